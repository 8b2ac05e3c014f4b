"""The running service: per configured camera, its session, frame bus and consumers (live feed, talk)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from opticlink.api import settings
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.auth.gate import Gate
from opticlink.auth.policy import RequestPolicy
from opticlink.auth.redact import install_log_redaction, redact
from opticlink.auth.sessions import SessionPolicy
from opticlink.camera.session import CameraSession
from opticlink.hub import FrameBus, Subscription
from opticlink.live.feed import LiveFeed
from opticlink.live.websocket import talker_name
from opticlink.media import MediaFrame
from opticlink.record.recorder import Recorder
from opticlink.record.recovery import recover
from opticlink.record.retention import Retention
from opticlink.rtsp.client import ClientConfig
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from opticlink.talk.return_path import ReturnPath
from opticlink.talk.session import TalkSession

log = logging.getLogger(__name__)
RETENTION_S = 60.0  # retention runs at least this often


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
    consumers: list[tuple[Subscription, asyncio.Task[None] | None]] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)

    def status(self) -> dict[str, object]:
        session = self.session
        sync = session.sync_stats()
        connection = session.client.connection if session.client is not None else None
        playing = session.state == "playing"
        out: dict[str, object] = {
            "id": self.config.id, "name": self.config.title, "state": session.state,
            "connects": session.connects,
            "error": redact(str(session.last_error), [self.config.password, urlsplit(self.config.url).password])
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


def _announce_lost(hub: LiveFeed) -> Callable[[str], None]:
    """Tell every viewer that the camera's speaker went away: the talker's talk ends with the reason."""
    def lost(reason: str) -> None:
        message = {"type": "talk", "talking": None, "state": "error",
                   "reason": f"the camera's speaker was lost: {reason}"}
        hub.broadcast(json.dumps(message), asyncio.get_running_loop().time())

    return lost


class Service:
    """Every configured camera's session and hub; `start()` sets the sessions going, each one
    reconnecting by itself with backoff."""

    def __init__(self, config: ServiceConfig, database: Database | None = None) -> None:
        self.config = config
        self.database = database or Database.open(config.data_dir if config.database == "file" else None)
        self.gate = Gate(self.database,
                         policy=RequestPolicy(config.hosts, config.host, config.origins),
                         sessions=SessionPolicy(idle=config.session_idle_minutes * 60,
                                                absolute=config.session_max_hours * 3600))
        self.cameras: dict[str, CameraRuntime] = {}
        self.server_task: asyncio.Task[None] | None = None  # the web server serving this service
        self.recordings = Recordings(self.database)
        self.retention: Retention | None = None
        self.retention_task: asyncio.Task[None] | None = None
        for camera in config.cameras:
            bus = FrameBus(camera.id)
            live = LiveFeed(camera.id, camera.title, audio=camera.live_audio)
            client = ClientConfig(camera.url, username=camera.username, password=camera.password,
                                  transport=camera.transport, udp_any_port=camera.udp_any_port,
                                  basic_auth=camera.basic_auth)
            session = CameraSession(client, name=camera.id, audio_offset_ms=camera.audio_offset_ms)
            # talk and its return path exist with talkback off too: an admin may switch it on at runtime
            return_path = ReturnPath(lambda session=session: session.epoch)
            if return_path is not None:
                bus.add_filter("echo", return_path.process)
            session.on_frame = _publisher(bus)
            talk = TalkSession(camera.id, client, packet_ms=camera.talk_packet_ms,
                               keep_open=camera.keep_backchannel_open, on_sent=return_path.far,
                               on_lost=_announce_lost(live))
            runtime = CameraRuntime(camera, bus, live, session, talk, return_path)
            runtime.consumers.append((bus.subscribe(f"live {camera.id}", after="echo" if return_path else None), None))
            if config.record and camera.record:
                runtime.recorder = self._recorder(runtime)
                runtime.consumers.append((runtime.recorder.subscription, None))
            self.cameras[camera.id] = runtime
        settings.restore(self.cameras, self.database, _now())  # what admins changed at runtime, over the YAML

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
            reason = redact(str(error), [camera.password, urlsplit(camera.url).password]) if error else None
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
        settings.apply(runtime, changes, _now())
        settings.persist(self.database, camera_id, {name: getattr(runtime.config, name) for name in changes})
        return settings.effective(runtime.config)

    async def _start_recording(self, loop: asyncio.AbstractEventLoop) -> None:
        """Recover what a crash left (before any recorder writes), then keep retention running."""
        root = self.config.recordings_root
        root.mkdir(parents=True, exist_ok=True)
        report = await asyncio.to_thread(recover, root, self.recordings)
        for runtime in self.cameras.values():
            if runtime.recorder is not None:
                runtime.recorder.resume_from = report.last_wall.get(runtime.config.id)
        self.retention = Retention(root, self.recordings,
                                   {c.id: (c.retain_days, c.retain_gb) for c in self.config.cameras},
                                   retain_gb=self.config.retain_gb, min_free_gb=self.config.min_free_gb)
        self._retention_due = asyncio.Event()
        for runtime in self.cameras.values():
            if runtime.recorder is not None:
                runtime.recorder.on_segment_closed = lambda: loop.call_soon_threadsafe(self._retention_due.set)
        self.retention_task = loop.create_task(self._retain(), name="retention")

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
        install_log_redaction(secret for camera in self.config.cameras
                              for secret in (camera.password, urlsplit(camera.url).password))
        self.gate.sessions.purge()  # sessions that expired while the service was down
        self.database.remove_audit_before(time.time() - self.config.audit_days * 86400)
        loop = asyncio.get_running_loop()
        if any(runtime.recorder is not None for runtime in self.cameras.values()):
            await self._start_recording(loop)
        for runtime in self.cameras.values():
            live, _ = runtime.consumers[0]
            runtime.consumers[0] = (live, loop.create_task(runtime.live.run(live), name=f"live-{runtime.config.id}"))
            if runtime.recorder is not None:
                runtime.consumers[1] = (runtime.recorder.subscription,
                                        loop.create_task(runtime.recorder.run(), name=f"record-{runtime.config.id}"))
            runtime.task = loop.create_task(runtime.session.run(), name=f"camera-{runtime.config.id}")

    async def stop(self) -> None:
        if self.retention_task is not None:
            self.retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.retention_task
        for runtime in self.cameras.values():
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
