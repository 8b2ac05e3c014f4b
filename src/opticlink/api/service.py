"""The running service: per configured camera, its session, frame bus and consumers (live feed, talk)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

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
from opticlink.rtsp.client import ClientConfig
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from opticlink.talk.return_path import ReturnPath
from opticlink.talk.session import TalkSession


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
            "talk": None if self.talk is None else self._talk_status(self.talk),
        }
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
        for camera in config.cameras:
            bus = FrameBus(camera.id)
            live = LiveFeed(camera.id, camera.title, audio=camera.live_audio)
            client = ClientConfig(camera.url, username=camera.username, password=camera.password,
                                  transport=camera.transport, udp_any_port=camera.udp_any_port,
                                  basic_auth=camera.basic_auth)
            session = CameraSession(client, name=camera.id, audio_offset_ms=camera.audio_offset_ms)
            return_path = ReturnPath(lambda session=session: session.epoch) if camera.talkback else None
            if return_path is not None:
                bus.add_filter("echo", return_path.process)
            session.on_frame = _publisher(bus)
            talk = (TalkSession(camera.id, client, packet_ms=camera.talk_packet_ms,
                                keep_open=camera.keep_backchannel_open,
                                on_sent=return_path.far if return_path is not None else None,
                                on_lost=_announce_lost(live))
                    if camera.talkback else None)
            runtime = CameraRuntime(camera, bus, live, session, talk, return_path)
            runtime.consumers.append((bus.subscribe(f"live {camera.id}", after="echo" if return_path else None), None))
            if config.record and camera.record:
                runtime.recorder = self._recorder(runtime)
                runtime.consumers.append((runtime.recorder.subscription, None))
            self.cameras[camera.id] = runtime

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

    async def start(self) -> None:
        # no camera password in any log line, whoever writes it (the RTSP layer quotes URLs and answers)
        install_log_redaction(secret for camera in self.config.cameras
                              for secret in (camera.password, urlsplit(camera.url).password))
        self.gate.sessions.purge()  # sessions that expired while the service was down
        loop = asyncio.get_running_loop()
        for runtime in self.cameras.values():
            live, _ = runtime.consumers[0]
            runtime.consumers[0] = (live, loop.create_task(runtime.live.run(live), name=f"live-{runtime.config.id}"))
            if runtime.recorder is not None:
                runtime.consumers[1] = (runtime.recorder.subscription,
                                        loop.create_task(runtime.recorder.run(), name=f"record-{runtime.config.id}"))
            runtime.task = loop.create_task(runtime.session.run(), name=f"camera-{runtime.config.id}")

    async def stop(self) -> None:
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
