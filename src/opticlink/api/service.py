"""The running service: per configured camera, its session, frame bus and consumers (live feed, talk)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit

import numpy as np

from opticlink import heap
from opticlink.api import settings
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.auth.gate import Gate
from opticlink.auth.policy import RequestPolicy
from opticlink.auth.redact import install_log_redaction, redact
from opticlink.auth.sessions import SessionPolicy
from opticlink.camera.session import CameraSession
from opticlink.cluster.node import NodeIdentity, NodeLoop
from opticlink.cluster.ownership import Changes
from opticlink.cluster.recovery import recover_cameras
from opticlink.hub import FrameBus, InlineSubscription, Subscription
from opticlink.live.feed import LiveFeed
from opticlink.live.websocket import announce_talk_available, talker_name
from opticlink.media import MediaFrame
from opticlink.record.recorder import Recorder
from opticlink.record.recovery import RecoveryReport, recover
from opticlink.record.retention import CameraLimits, Retention
from opticlink.rtsp.client import ClientConfig
from opticlink.store import Database
from opticlink.store.cameras import CameraStore
from opticlink.store.recordings import Recordings
from opticlink.talk.return_path import ReturnPath
from opticlink.talk.session import TalkSession

log = logging.getLogger(__name__)
RETENTION_S = 60.0  # retention runs at least this often
# A sub-stream with no viewer left is stopped this long after the last one went: a wall of tiles does
# not keep sessions nobody watches, and a tile focused (main) then unfocused (sub) again does not reconnect.
SUBSTREAM_IDLE_S = 30.0


async def _trim_heap() -> None:
    """Hand the C heap's free pages back every `heap.TRIM_INTERVAL_S` (see `opticlink.heap`)."""
    while True:
        await asyncio.sleep(heap.TRIM_INTERVAL_S)
        await asyncio.to_thread(heap.trim)


def _secrets(camera: CameraConfig) -> list[str | None]:
    """The camera's passwords: configured, and in its URLs (as written and decoded)."""
    out = [camera.password]
    for url in (camera.url, camera.substream_url):
        password = _url_password(url) if url is not None else None
        if password:
            out += [password, unquote(password)]
    return out


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def substream_client(camera: CameraConfig) -> ClientConfig | None:
    """How to reach the camera's sub-stream: its URL with the camera's credentials (given apart, else
    the main URL's), unless the sub-stream URL carries its own; None when there is no sub-stream."""
    url = camera.substream_url
    if url is None:
        return None
    username, password = camera.username, camera.password
    try:
        own, main = urlsplit(url), urlsplit(camera.url)
    except ValueError:  # a malformed URL: the session says so in its status
        own = main = None
    if own is not None and own.username is not None:
        username = password = None  # the client takes them from the URL
    elif username is None and main is not None and main.username is not None:
        username, password = unquote(main.username), unquote(main.password or "")
    return ClientConfig(url, username=username, password=password, transport=camera.transport,
                        udp_any_port=camera.udp_any_port, basic_auth=camera.basic_auth)


class Companion(Protocol):
    """A task of the service's that lives as long as it runs (the diagnostics sampler)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class SubStream:
    """A camera's sub-stream, for live viewers only (the recorder and talk stay on the main stream):
    its own RTSP session, sync engine, frame bus (with its own echo-cancelled return path) and live
    feed. It runs on demand: `acquire()` by a viewer starts it, and `SUBSTREAM_IDLE_S` after the last
    `release()` it stops; each start is a new session, bus and feed (no stale picture)."""

    def __init__(self, camera: CameraConfig, client: ClientConfig) -> None:
        self.camera = camera
        self.client = client
        self.session: CameraSession | None = None
        self.bus: FrameBus | None = None
        self.live: LiveFeed | None = None
        self.return_path: ReturnPath | None = None
        self.users = 0  # live connections holding it
        self.starts = 0
        self.last_error: str | None = None  # why the last run's session failed, kept while idle
        self._subscription: InlineSubscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._idle: asyncio.TimerHandle | None = None
        self._idle_at: float | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self.session is not None

    def acquire(self) -> LiveFeed:
        """The sub-stream's live feed for a new viewer, starting the sub-stream if it is idle."""
        loop = asyncio.get_running_loop()
        self._cancel_idle()
        if self.live is None:
            self._start(loop)
        assert self.live is not None
        self.users += 1
        return self.live

    def release(self) -> None:
        """A viewer left; the last one arms the idle stop (`SUBSTREAM_IDLE_S`, read now: tests patch it)."""
        self.users = max(0, self.users - 1)
        if self.users or self.session is None:
            return
        loop = asyncio.get_running_loop()
        self._cancel_idle()
        self._idle_at = loop.time() + SUBSTREAM_IDLE_S
        self._idle = loop.call_later(SUBSTREAM_IDLE_S, self._on_idle)

    def far(self, pcm: np.ndarray, rate: int, sent_at: float) -> None:
        """What went to the camera's speaker: the sub-stream's sound is echo-cancelled as the main's."""
        if self.return_path is not None:
            self.return_path.far(pcm, rate, sent_at)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self._idle_at = None

    def _on_idle(self) -> None:
        self._idle = self._idle_at = None
        if self.users == 0:
            log.info("camera %s: sub-stream unwatched for %.0f s", self.camera.id, SUBSTREAM_IDLE_S)
            task = asyncio.get_running_loop().create_task(self.stop(), name=f"substream-stop-{self.camera.id}")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        camera = self.camera
        name = f"{camera.id}/sub"
        bus = FrameBus(name)
        live = LiveFeed(camera.id, camera.title, audio=camera.live_audio)
        session = CameraSession(self.client, name=name, audio_offset_ms=camera.audio_offset_ms)
        return_path = ReturnPath(lambda: session.epoch)
        bus.add_filter("echo", return_path.process)
        session.on_frame = _publisher(bus)
        subscription = bus.subscribe_inline(f"live {name}", live.take, after="echo")
        self.session, self.bus, self.live, self.return_path = session, bus, live, return_path
        self._subscription = subscription
        self._tasks = [loop.create_task(session.run(), name=f"camera-{name}")]
        self.starts += 1
        self.last_error = None
        log.info("camera %s: sub-stream started for a viewer", camera.id)

    async def stop(self) -> None:
        """Stop the session and let its viewers go (the service stopping, or idle)."""
        self._cancel_idle()
        session, bus, live, subscription, tasks = self.session, self.bus, self.live, self._subscription, self._tasks
        if session is None or bus is None or live is None:
            return
        # forgotten first: a viewer arriving while this one closes starts a new session
        self.session = self.bus = self.live = self.return_path = self._subscription = None
        self._tasks = []
        if session.last_error is not None and session.state != "playing":
            self.last_error = redact(str(session.last_error), _secrets(self.camera))
        for viewer in list(live.viewers):
            live.detach(viewer)
        await session.stop()
        if subscription is not None:
            bus.unsubscribe(subscription)
        for task in tasks:
            if task.get_name().startswith("camera-"):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
        log.info("camera %s: sub-stream stopped", self.camera.id)

    async def close(self) -> None:
        """Stop now (the service stops), and wait for an idle stop under way."""
        await self.stop()
        pending = [task for task in self._stopping if task is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=10.0)

    def status(self, now: float) -> dict[str, object]:
        """The sub-stream as an operator reads it: `state` idle (no viewer: not connected) or the
        session's (connecting, playing, retrying, stopped), its viewers, and when an unwatched one stops."""
        session, live = self.session, self.live
        stops_in = round(max(0.0, self._idle_at - now), 1) if self._idle_at is not None else None
        if session is None or live is None:
            return {"state": "idle", "summary": "idle: not connected; starts when a viewer asks for it",
                    "viewers": [], "frames": 0, "connects": 0, "starts": self.starts, "stops_in_s": None,
                    "error": self.last_error}
        error = (redact(str(session.last_error), _secrets(self.camera))
                 if session.last_error is not None and session.state != "playing" else None)
        watched = len(live.viewers)
        summary = f"{session.state} for {watched} viewer{'s' if watched != 1 else ''}"
        if stops_in is not None:
            summary = f"{session.state}, no viewer: stops in {stops_in:.0f} s"
        return {"state": session.state, "summary": summary,
                "viewers": [{"name": v.name, "sent": v.sent, "dropped_video": v.dropped_video,
                             "dropped_audio": v.dropped_audio} for v in live.viewers],
                "frames": live.frames, "connects": session.connects, "starts": self.starts,
                "stops_in_s": stops_in, "error": error,
                "tracks": [{"index": t.index, "kind": t.kind, "codec": t.format.encoding,
                            "clock_rate": t.format.clock_rate} for t in session.tracks],
                "problems": session.problems() + live.problems()}


@dataclass(slots=True)
class CameraRuntime:
    config: CameraConfig
    bus: FrameBus
    live: LiveFeed
    session: CameraSession
    talk: TalkSession | None = None
    return_path: ReturnPath | None = None
    task: asyncio.Task[None] | None = None
    recorder: Recorder | None = None
    consumers: list[tuple[Subscription | InlineSubscription, asyncio.Task[None] | None]] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)
    substream: SubStream | None = None  # the camera's low-resolution stream for live tiles, run on demand

    def feeds(self) -> list[LiveFeed]:
        """Every live feed of the camera now: the main stream's, and the sub-stream's while it runs."""
        sub = self.substream.live if self.substream is not None else None
        return [self.live] if sub is None else [self.live, sub]

    def status(self) -> dict[str, object]:
        session = self.session
        sync = session.sync_stats()
        connection = session.client.connection if session.client is not None else None
        playing = session.state == "playing"
        out: dict[str, object] = {
            "id": self.config.id, "name": self.config.title, "state": session.state,
            "connects": session.connects,
            "error": redact(str(session.last_error), _secrets(self.config))
            if session.last_error and not playing else None,
            "problems": session.problems() + self.live.problems(),  # what is wrong with what a playing camera sends
            "transport": connection.transport if connection is not None else None,  # tcp or udp, used or tried
            "transport_requested": self.config.transport,
            "fallbacks": list(connection.fallbacks) if connection is not None else [],
            "media": [asdict(m) for m in connection.media_states(_now())] if connection is not None else [],
            "datagrams_dropped": connection.datagrams_dropped if connection is not None else 0,
            "viewers": [{"name": v.name, "sent": v.sent, "dropped_video": v.dropped_video,
                         "dropped_audio": v.dropped_audio} for v in self.live.viewers],
            "frames": self.live.frames,
            "tracks": [{"index": t.index, "kind": t.kind, "codec": t.format.encoding, "clock_rate": t.format.clock_rate,
                        "backchannel": t.backchannel} for t in session.tracks],
            "sync": asdict(sync) if sync is not None else None,
            "talk": None if self.talk is None or not self.config.talkback else self._talk_status(self.talk),
            "substream": self.substream is not None,  # live viewers may ask for it: `?stream=sub`
            "substream_status": self.substream.status(_now()) if self.substream is not None else None,
        }
        if self.recorder is not None:
            out["recording"] = asdict(self.recorder.stats)
        if session.ingest is not None:
            out["reception"] = {index: {**asdict(state.receiver.stats.snapshot()), "lost": state.receiver.buffer.lost}
                                for index, state in session.ingest.states.items()}
        return out

    def _talk_status(self, talk: TalkSession) -> dict[str, object]:
        pacer = talk.pacer
        out: dict[str, object] = {
            "talking": talker_name(talk.talker), "open": talk.open, "opens": talk.opens,
            "packets": talk.packets_sent,
            "frames_rejected": talk.frames_rejected, "frames_dropped": talk.frames_dropped,
            "talkspurt_skips": pacer.skips if pacer is not None else 0, "latency": talk.latency_stats(),
            # whether the camera has a speaker: None until its backchannel has opened or been refused
            "speaker": False if talk.no_speaker else (True if talk.speaker_seen else None),
            "no_speaker": talk.no_speaker,
        }
        back = self.return_path
        if back is not None:
            out["echo_control"] = {
                "frames_cleaned": back.cleaned,
                "near_anchors": back.echo.near_anchors if back.echo is not None else 0,
                "howling_detections": back.guard.detections if back.guard is not None else 0,
                "howling": bool(back.guard is not None and back.guard.howling),
            }
        return out


def _now() -> float:
    """The clock the camera sessions run on (the loop's)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _publisher(bus: FrameBus) -> Callable[[MediaFrame], None]:
    def publish(frame: MediaFrame) -> None:
        bus.publish(frame, asyncio.get_running_loop().time())

    return publish


def _announce_lost(feeds: Callable[[], Iterable[LiveFeed]]) -> Callable[[str], None]:
    """Tell every viewer (main and sub-stream) that the camera's speaker went away: the talker's talk
    ends with the reason."""
    def lost(reason: str) -> None:
        message = {"type": "talk", "talking": None, "state": "error",
                   "reason": f"the camera's speaker was lost: {reason}"}
        for feed in feeds():
            feed.broadcast(json.dumps(message), asyncio.get_running_loop().time())

    return lost


def _far_ends(main: ReturnPath, substream: SubStream | None) -> Callable[[np.ndarray, int, float], None]:
    """What talk sends to the speaker, to each stream's echo canceller (the sub-stream's while it runs)."""
    if substream is None:
        return main.far

    def far(pcm: np.ndarray, rate: int, sent_at: float) -> None:
        main.far(pcm, rate, sent_at)
        substream.far(pcm, rate, sent_at)

    return far


def _follow_settings(runtime: CameraRuntime, changed: Mapping[str, tuple[object, object]], talker: str | None,
                     now: float) -> None:
    """The settings just applied to the main stream (`settings.apply`), applied to the running
    sub-stream too: its viewers' sound, its offset, and talk ended or allowed again."""
    sub = runtime.substream
    feed = sub.live if sub is not None else None
    if sub is None or feed is None or sub.session is None:
        return  # an idle sub-stream starts with the settings as they are then
    config = runtime.config
    if "live_audio" in changed:
        feed.set_audio(config.live_audio, now)
    if "audio_offset_ms" in changed:
        sub.session.set_audio_offset(config.audio_offset_ms)
    if "talkback" in changed:
        reason = settings.talk_unavailable(runtime)
        if reason is not None and talker is not None:
            for viewer in feed.viewers:
                viewer.mute_audio = False
            feed.broadcast(json.dumps({"type": "talk", "talking": None, "state": "error", "reason": reason}), now)
        announce_talk_available(feed, runtime.talk, reason, now)


SPEAKER_CHECKS = 3  # times a camera that could not be reached is asked again whether it has a speaker
SPEAKER_CHECK_INTERVAL_S = 30.0


async def _check_speaker(runtime: CameraRuntime) -> None:
    """Learn whether the camera has a speaker before anyone presses talk, and tell the viewers when
    it has none (their talk button goes): asked at start, and again while it cannot be reached."""
    talk = runtime.talk
    assert talk is not None
    for _ in range(SPEAKER_CHECKS):
        reason = await talk.check_speaker()
        if reason is not None:
            log.info("camera %s: %s; talk is off for it", runtime.config.id, reason)
            now = asyncio.get_running_loop().time()
            for feed in runtime.feeds():
                announce_talk_available(feed, talk, reason, now)
            return
        if talk.error is None:
            return  # it has a speaker
        await asyncio.sleep(SPEAKER_CHECK_INTERVAL_S)


class Service:
    """Every configured camera's session and hub; `start()` sets the sessions going, each one
    reconnecting by itself with backoff."""

    def __init__(self, config: ServiceConfig, database: Database | None = None,
                 node: NodeIdentity | None = None) -> None:
        """`node`: run as that node of a shared catalog (`opticlink.cluster`), only the cameras whose
        lease it holds; None: alone, every camera (the default)."""
        self.config = config
        self.database = database or Database.connect(config.database, config.data_dir)
        self.gate = Gate(self.database,
                         policy=RequestPolicy(config.hosts, config.host, config.origins),
                         sessions=SessionPolicy(idle=config.session_idle_minutes * 60,
                                                absolute=config.session_max_hours * 3600))
        self.cameras: dict[str, CameraRuntime] = {}
        self.server_task: asyncio.Task[None] | None = None  # the web server serving this service
        self.recordings = Recordings(self.database)
        self.retention: Retention | None = None
        self.retention_task: asyncio.Task[None] | None = None
        self.trim_task: asyncio.Task[None] | None = None
        self.declared: set[str] = {camera.id for camera in config.cameras}  # the YAML's: not editable by the API
        self.disabled: dict[str, CameraConfig] = {}  # API-added cameras switched off: kept, not run
        self.camera_store = CameraStore(self.database)
        self.started = False
        self.companions: list[Companion] = []  # started and stopped with the service (api.diagnostics's sampler)
        self._changing = asyncio.Lock()  # one camera change at a time (add, edit, remove, enable)
        # a node of a cluster: the enabled cameras other nodes run (or nobody yet), by id; its node loop
        self.elsewhere: dict[str, CameraConfig] = {}
        self.order: dict[str, int] = {}  # cameras in the order configured: every node lists them alike
        self.node: NodeLoop | None = None
        if node is not None:
            self.node = NodeLoop(self.database, node, self._enabled_ids, self._apply_ownership,
                                 refresh=self._refresh_catalog)
        self._seen: dict[str, float] = {}  # API-added cameras: their row's `updated` as this node last saw it
        for camera in config.cameras:
            self._place(camera)
        for row in self.camera_store.all():
            self._seen[row.id] = row.updated
            if row.id in self.declared:
                log.warning("camera %s is declared in the configuration file, which wins over the one added "
                            "through the API", row.id)
                continue
            try:
                stored = CameraConfig.model_validate(row.config)
            except ValueError as exc:
                log.warning("camera %s kept in the database is not valid any more, not started: %s", row.id,
                            redact(str(exc), [str(row.config.get("password") or "")]))
                continue
            if row.enabled:
                self._place(stored)
            else:
                self.disabled[stored.id] = stored
        settings.restore(self.cameras, self.database, _now())  # what admins changed at runtime, over the YAML

    def _place(self, camera: CameraConfig) -> None:
        """An enabled camera: built to run here (alone), or left to the node loop (a cluster's node)."""
        self.order.setdefault(camera.id, len(self.order))
        if self.node is None:
            self.cameras[camera.id] = self._runtime(camera)
        else:
            self.elsewhere[camera.id] = camera

    def _store(self, camera: str, config: dict[str, object], enabled: bool) -> None:
        """Keep an API-added camera's configuration (this node's own change: not one to catch up on)."""
        now = time.time()
        self.camera_store.put(camera, config, enabled, now)
        self._seen[camera] = now

    async def _refresh_catalog(self) -> None:
        """A cluster's node catches up with the cameras other nodes added, changed or removed through the
        API (each node step): the camera is stopped here if it ran here, then placed afresh."""
        rows = {row.id: row for row in await asyncio.to_thread(self.camera_store.all) if row.id not in self.declared}
        async with self._changing:
            for camera in [c for c in self._seen if c not in rows]:
                self._seen.pop(camera)
                await self._drop(camera)
            for camera, row in rows.items():
                if self._seen.get(camera) == row.updated:
                    continue
                self._seen[camera] = row.updated
                try:
                    config = CameraConfig.model_validate(row.config)
                except ValueError:
                    log.warning("camera %s kept in the database is not valid, not run", camera)
                    continue
                log.info("camera %s changed on another node: placed afresh", camera)
                await self._drop(camera)
                install_log_redaction(_secrets(config))
                if row.enabled:
                    self._place(config)
                else:
                    self.disabled[camera] = config

    async def _drop(self, camera: str) -> None:
        """Forget a camera here (stopping it if it ran here, its lease given up)."""
        runtime = self.cameras.pop(camera, None)
        self.elsewhere.pop(camera, None)
        self.disabled.pop(camera, None)
        if runtime is not None:
            await self._stop_runtime(runtime)
        if self.node is not None:
            await self.node.forget(camera)

    def _enabled_ids(self) -> list[str]:
        """Every enabled camera, run here or elsewhere: what the node loop shares out."""
        return [*self.cameras, *self.elsewhere]

    def _adopt(self, camera: str) -> CameraRuntime | None:
        """Build a camera this node just claimed (its settings kept in the database applied)."""
        config = self.elsewhere.pop(camera, None)
        if config is None:
            return None  # removed meanwhile: the next step releases it
        runtime = self._runtime(config)
        settings.restore({camera: runtime}, self.database, _now())
        self.cameras[camera] = runtime
        return runtime

    async def _apply_ownership(self, changes: Changes) -> None:
        """The node loop's decisions: stop the cameras lost or given up (at once), start those claimed."""
        async with self._changing:
            for camera in changes.stop:
                runtime = self.cameras.pop(camera, None)
                if runtime is not None:
                    self.elsewhere[camera] = runtime.config
                    await self._stop_runtime(runtime)
            if not self.started:
                return
            loop = asyncio.get_running_loop()
            for camera in changes.start:
                runtime = self._adopt(camera)
                if runtime is None:
                    continue
                await self._recover_taken(runtime, loop)
                self._start_runtime(runtime, loop)

    async def _recover_taken(self, runtime: CameraRuntime, loop: asyncio.AbstractEventLoop) -> None:
        """A camera taken while running: what its former owner's crash left mended, its gap resumed."""
        if runtime.recorder is None:
            return
        camera = runtime.config.id
        if self.retention is None:  # this node's first recording camera: recovery and retention start now
            report = await self._start_recording(loop)
        else:
            report = await asyncio.to_thread(recover_cameras, self.config.recordings_root, self.recordings, [camera])
            self.retention.cameras[camera] = CameraLimits(runtime.config.retain_days, runtime.config.retain_gb)
        self._index_takeover_gap(runtime, report.last_wall.get(camera), loop)

    def _index_takeover_gap(self, runtime: CameraRuntime, last: float | None,
                            loop: asyncio.AbstractEventLoop) -> None:
        """However short (a worker's cameras move within a second or two, under the recorder's GAP_S), the
        time since the former owner's last frame is indexed as a gap, closed when this node's first
        segment opens."""
        if runtime.recorder is None or last is None:
            return
        camera = runtime.config.id
        runtime.recorder.resume_from = None
        node = self.node.id if self.node is not None else "?"
        detail = f"the camera moved to node {node} (its former node stopped or gave it up)"
        gap = self.recordings.open_gap(camera, last, "service not running", detail)
        runtime.extras["failover gap"] = loop.create_task(self._close_failover_gap(camera, gap, last),
                                                          name=f"failover-gap-{camera}")

    async def _close_failover_gap(self, camera: str, gap: int, since: float) -> None:
        """Close a takeover's gap at the start of the camera's first segment after it (checked each 0.5 s)."""
        while True:
            await asyncio.sleep(0.5)
            found = await asyncio.to_thread(self.recordings.segments, camera, since + 1e-3, None, limit=1)
            first = next((s for s in found if s.start_wall > since), None)
            if first is not None:
                await asyncio.to_thread(self.recordings.close_gap, gap, first.start_wall)
                return

    def _runtime(self, camera: CameraConfig) -> CameraRuntime:
        """A camera's session, bus, live feed, talk and recorder, not started yet."""
        bus = FrameBus(camera.id)
        live = LiveFeed(camera.id, camera.title, audio=camera.live_audio)
        client = ClientConfig(camera.url, username=camera.username, password=camera.password,
                              transport=camera.transport, udp_any_port=camera.udp_any_port,
                              basic_auth=camera.basic_auth)
        session = CameraSession(client, name=camera.id, audio_offset_ms=camera.audio_offset_ms)
        # talk and its return path exist with talkback off too: an admin may switch it on at runtime
        return_path = ReturnPath(lambda session=session: session.epoch)
        bus.add_filter("echo", return_path.process)
        session.on_frame = _publisher(bus)
        sub_client = substream_client(camera)
        substream = SubStream(camera, sub_client) if sub_client is not None else None

        def feeds() -> list[LiveFeed]:
            return runtime.feeds()

        talk = TalkSession(camera.id, client, packet_ms=camera.talk_packet_ms,
                           keep_open=camera.keep_backchannel_open, on_sent=_far_ends(return_path, substream),
                           on_lost=_announce_lost(feeds))
        runtime = CameraRuntime(camera, bus, live, session, talk, return_path, substream=substream)
        runtime.consumers.append((bus.subscribe_inline(f"live {camera.id}", live.take, after="echo"), None))
        if self.config.record and camera.record:
            runtime.recorder = self._recorder(runtime)
            runtime.consumers.append((runtime.recorder.subscription, None))
        return runtime

    def _start_runtime(self, runtime: CameraRuntime, loop: asyncio.AbstractEventLoop) -> None:
        """Set a built camera going: its live feed, recorder and session tasks."""
        if runtime.recorder is not None:
            runtime.consumers[1] = (runtime.recorder.subscription,
                                    loop.create_task(runtime.recorder.run(), name=f"record-{runtime.config.id}"))
            if self.retention is not None:
                runtime.recorder.on_segment_closed = lambda: loop.call_soon_threadsafe(self._retention_due.set)
        runtime.task = loop.create_task(runtime.session.run(), name=f"camera-{runtime.config.id}")
        if runtime.talk is not None and runtime.config.talkback:
            runtime.extras["speaker check"] = loop.create_task(_check_speaker(runtime),
                                                              name=f"speaker-{runtime.config.id}")

    async def _stop_runtime(self, runtime: CameraRuntime) -> None:
        """Stop a camera cleanly: talk, session, consumers (the recorder closes its segment), viewers."""
        closer = runtime.extras.pop("failover gap", None)
        if isinstance(closer, asyncio.Task):
            closer.cancel()
        check = runtime.extras.pop("speaker check", None)
        if isinstance(check, asyncio.Task):
            check.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await check
        if runtime.talk is not None:
            await runtime.talk.close()
        await runtime.session.stop()
        if runtime.task is not None:
            runtime.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runtime.task
        for subscription, task in runtime.consumers:
            runtime.bus.unsubscribe(subscription)
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5.0)
        for viewer in list(runtime.live.viewers):
            runtime.live.detach(viewer)
        if runtime.substream is not None:
            await runtime.substream.close()

    # camera management (the API's): the service keeps running, and so do the other cameras -----------

    def all_cameras(self) -> list[tuple[CameraConfig, bool]]:
        """Every camera's configuration and whether it runs: the running ones, then the disabled ones."""
        enabled = [r.config for r in self.cameras.values()] + list(self.elsewhere.values())
        if self.node is not None:
            enabled.sort(key=lambda c: self.order.get(c.id, len(self.order)))
        return [(c, True) for c in enabled] + [(c, False) for c in self.disabled.values()]

    def camera_config(self, camera: str) -> CameraConfig | None:
        runtime = self.cameras.get(camera)
        if runtime is not None:
            return runtime.config
        return self.elsewhere.get(camera) or self.disabled.get(camera)

    async def add_camera(self, camera: CameraConfig, enabled: bool = True) -> None:
        """Add a camera (kept in the database) and start it, unless `enabled` is false. KeyError: the id is taken."""
        async with self._changing:
            if self.camera_config(camera.id) is not None:
                raise KeyError(camera.id)
            self._store(camera.id, camera.model_dump(mode="json"), enabled)
            Recordings(self.database).set_camera_settings(camera.id, {}, time.time())  # a former camera's go
            await self._run(camera, enabled)

    async def replace_camera(self, camera: CameraConfig, enabled: bool) -> None:
        """A stored camera's new configuration and state: only this camera restarts."""
        async with self._changing:
            runtime = self.cameras.pop(camera.id, None)
            self.disabled.pop(camera.id, None)
            self.elsewhere.pop(camera.id, None)
            if runtime is not None:
                await self._stop_runtime(runtime)
            self._store(camera.id, camera.model_dump(mode="json"), enabled)
            # the settings kept apart (`apply_settings`) would override the new configuration at the next start
            Recordings(self.database).set_camera_settings(camera.id, {}, time.time())
            await self._run(camera, enabled)

    async def remove_camera(self, camera: str) -> None:
        """Stop a stored camera and forget it; its recordings stay indexed."""
        async with self._changing:
            runtime = self.cameras.pop(camera, None)
            self.disabled.pop(camera, None)
            self.elsewhere.pop(camera, None)
            if runtime is not None:
                await self._stop_runtime(runtime)
            self.camera_store.remove(camera)
            self._seen.pop(camera, None)
            Recordings(self.database).set_camera_settings(camera, {}, time.time())

    async def _run(self, camera: CameraConfig, enabled: bool) -> None:
        if not enabled:
            self.disabled[camera.id] = camera
            return
        install_log_redaction(_secrets(camera))
        if self.node is not None:  # a cluster's node: the node loop places it (here or on another node)
            self._place(camera)
            await self.node.forget(camera.id)  # stopped by the caller (an edit): claimed afresh
            self.node.wake()
            return
        runtime = self._runtime(camera)
        self.cameras[camera.id] = runtime
        if not self.started:
            return
        loop = asyncio.get_running_loop()
        if runtime.recorder is not None:
            if self.retention is None:
                await self._start_recording(loop)
            else:
                runtime.recorder.resume_from = None
            assert self.retention is not None
            self.retention.cameras[camera.id] = CameraLimits(camera.retain_days, camera.retain_gb)
        self._start_runtime(runtime, loop)

    def _recorder(self, runtime: CameraRuntime) -> Recorder:
        """The camera's recorder: a `gaps` subscription on its bus (frames as the camera sent them)."""
        session, camera = runtime.session, runtime.config

        def server_wall(pts_us: int) -> float:
            epoch = session.epoch if session.epoch is not None else time.monotonic()
            return time.time() - (time.monotonic() - (epoch + pts_us / 1e6))

        def why_silent() -> str:
            if session.state == "playing":
                return "no media"
            error = session.last_error
            reason = redact(str(error), _secrets(camera)) if error else None
            return f"camera offline: {reason}" if reason else "camera offline"

        subscription = runtime.bus.subscribe(f"recorder {camera.id}", policy="gaps")
        return Recorder(camera.id, self.config.recordings_root, self.recordings, subscription,
                        server_wall=server_wall, record_audio=lambda: runtime.config.record_audio,
                        why_silent=why_silent, segment_s=self.config.segment_seconds)

    def apply_settings(self, camera_id: str, changes: Mapping[str, object]) -> dict[str, object]:
        """Change a camera's audio preferences (`settings.SETTINGS`) at once, without restarting its
        session, and keep them over the YAML's; returns the settings now in effect. Raises KeyError
        for an unknown camera, ValueError for a value its configuration refuses."""
        runtime = self.cameras[camera_id]
        talker = runtime.talk.talker if runtime.talk is not None else None
        changed = settings.apply(runtime, changes, _now())
        _follow_settings(runtime, changed, talker, _now())
        settings.persist(self.database, camera_id, {name: getattr(runtime.config, name) for name in changes})
        if camera_id not in self.declared:  # an API-added camera: its stored configuration follows
            self._store(camera_id, runtime.config.model_dump(mode="json"), True)
        return settings.effective(runtime.config)

    async def _start_recording(self, loop: asyncio.AbstractEventLoop) -> RecoveryReport:
        """Recover what a crash left (before any recorder writes), then keep retention running; what
        the recovery found."""
        root = self.config.recordings_root
        root.mkdir(parents=True, exist_ok=True)
        if self.node is None:
            report = await asyncio.to_thread(recover, root, self.recordings)
        else:  # other nodes record beside this one: only the cameras it holds
            report = await asyncio.to_thread(recover_cameras, root, self.recordings,
                                             [c for c, r in self.cameras.items() if r.recorder is not None])
        for runtime in self.cameras.values():
            if runtime.recorder is not None:
                runtime.recorder.resume_from = report.last_wall.get(runtime.config.id)
        self.retention = Retention(root, self.recordings,
                                   {r.config.id: (r.config.retain_days, r.config.retain_gb)
                                    for r in self.cameras.values()},
                                   retain_gb=self.config.retain_gb, min_free_gb=self.config.min_free_gb)
        self._retention_due = asyncio.Event()
        for runtime in self.cameras.values():
            if runtime.recorder is not None:
                runtime.recorder.on_segment_closed = lambda: loop.call_soon_threadsafe(self._retention_due.set)
        self.retention_task = loop.create_task(self._retain(), name="retention")
        return report

    async def _retain(self) -> None:
        """Apply retention every `RETENTION_S`, and after each segment closes."""
        assert self.retention is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RETENTION_S):
                    await self._retention_due.wait()
            self._retention_due.clear()
            try:
                await asyncio.to_thread(self.retention.run_once, time.time())
            except Exception:
                log.exception("retention failed; trying again in %.0f s", RETENTION_S)

    async def start(self) -> None:
        # no camera password in any log line, whoever writes it (the RTSP layer quotes URLs and answers)
        install_log_redaction(secret for runtime in self.cameras.values() for secret in _secrets(runtime.config))
        install_log_redaction(secret for camera in self.disabled.values() for secret in _secrets(camera))
        self.gate.sessions.purge()  # sessions that expired while the service was down
        self.database.remove_audit_before(time.time() - self.config.audit_days * 86400)
        loop = asyncio.get_running_loop()
        if self.node is not None:  # claimed before any camera starts: a node alone starts them all at once
            changes = await asyncio.to_thread(self.node.first_step)
            for camera in changes.start:
                self._adopt(camera)
        if any(runtime.recorder is not None for runtime in self.cameras.values()):
            report = await self._start_recording(loop)
            if self.node is not None:  # a node restarted after a crash may take its cameras back at once
                for runtime in self.cameras.values():
                    self._index_takeover_gap(runtime, report.last_wall.get(runtime.config.id), loop)
        for runtime in self.cameras.values():
            self._start_runtime(runtime, loop)
        self.trim_task = loop.create_task(_trim_heap(), name="heap trim")
        self.started = True
        for companion in self.companions:
            companion.start()
        if self.node is not None:
            self.node.start()

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop()
        for companion in self.companions:
            await companion.stop()
        for task in (self.retention_task, self.trim_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for runtime in list(self.cameras.values()):
            await self._stop_runtime(runtime)
        if self.node is not None:  # after the cameras stopped: the others may take them at once
            await self.node.leave()
