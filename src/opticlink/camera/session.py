"""One camera kept playing: RTSP client, ingest, sync engine, reconnection (asyncio).

Owns the loop's clock and timers for the sans-IO `CameraIngest`, `SyncEngine` and (optionally)
`FrameMerger`. Access units go to `on_unit` and timed frames to `on_frame` as they are produced.
The timeline's epoch is the session's start and survives reconnects, so presentation times run
on across them. A camera that fails or vanishes is reconnected with jittered exponential backoff
(0.5 s doubling to `BACKOFF_MAX`, reset by every successful PLAY), so it plays again within about
2 s of coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import Literal

from opticlink.camera.ingest import CameraIngest
from opticlink.errors import RtspError
from opticlink.media import AccessUnit, MediaFrame
from opticlink.rtsp.aio import RtspClient
from opticlink.rtsp.client import (
    BackchannelUnavailable,
    ClientConfig,
    Event,
    Playing,
    RtcpReceived,
    RtpReceived,
    Track,
    redact_url,
)
from opticlink.sync import FrameMerger, SyncEngine, SyncStats
from opticlink.sync.engine import MAX_PENDING_SOURCES, TrackInfo
from opticlink.sync.reports import SenderReportInfo

log = logging.getLogger(__name__)

SessionState = Literal["idle", "connecting", "playing", "retrying", "stopped"]


class CameraSession:
    """Connects to a camera and keeps its live tracks flowing to `on_unit`."""

    BACKOFF_MIN = 0.5
    # The longest wait between attempts. A camera that comes back (a reboot, a restarted encoder)
    # must play again within 2 s: an attempt at most 1.5 s later, plus connect, DESCRIBE, SETUP and
    # PLAY. Trying an absent camera every 1.5 s costs one refused connection (or one connect
    # timeout); repeated failures are logged only when their reason changes.
    BACKOFF_MAX = 1.5
    # Each wait is drawn from [1 - BACKOFF_JITTER, 1] of the backoff, so cameras that failed together
    # (a switch that rebooted) do not all retry in the same instant.
    BACKOFF_JITTER = 0.5

    def __init__(
        self,
        config: ClientConfig,
        *,
        name: str = "camera",
        on_unit: Callable[[int, AccessUnit], None] | None = None,
        on_sender_report: Callable[[SenderReportInfo], None] | None = None,
        on_playing: Callable[[list[Track]], None] | None = None,
        on_frame: Callable[[MediaFrame], None] | None = None,
        on_client_event: Callable[[Event], None] | None = None,
        reconnect: bool = True,
        jitter_wait: float = 0.05,
        audio_offset_ms: float = 0.0,
        merge_hold: float | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.on_unit = on_unit or (lambda track, unit: None)
        self.on_sender_report = on_sender_report or (lambda info: None)
        self.on_playing = on_playing or (lambda tracks: None)
        self.on_client_event = on_client_event  # every RTSP client event, before the session acts on it
        self.on_frame = on_frame
        self.reconnect = reconnect
        self.jitter_wait = jitter_wait
        self.audio_offset_ms = audio_offset_ms
        self.merge_hold = merge_hold
        self.engine: SyncEngine | None = None
        self._restarted = False  # the first frame since a reconnection is still to come
        self.merger: FrameMerger | None = None
        self.epoch: float | None = None
        self.state: SessionState = "idle"
        self.client: RtspClient | None = None
        self.ingest: CameraIngest | None = None
        self.tracks: list[Track] = []
        self.last_error: RtspError | None = None
        self.backchannel_note: str | None = None
        self.connects = 0
        self.foreign_reports: dict[int, int] = {}  # per track: Sender Reports of another SSRC than its RTP's
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._input_at: float | None = None  # RTP arrived at this time, `_after_input` not yet run for it
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._playing = asyncio.Event()

    @property
    def backchannel(self) -> Track | None:
        return next((t for t in self.tracks if t.backchannel), None)

    async def wait_playing(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._playing.wait(), timeout)

    def problems(self) -> list[str]:
        """What is wrong with what the camera sends while it plays (units dropped, and why), per track."""
        if self.ingest is None:
            return []
        out = []
        if self.client is not None and (unrouted := self.client.connection.frames_unrouted):
            out.append(f"{unrouted} interleaved frames on channels no track was set up on (dropped)")
        if self.ingest.malformed_rtcp:
            out.append(f"{self.ingest.malformed_rtcp} malformed RTCP packets (dropped)")
        out += [f"track {index} ({state.track.kind}): {problem}" for index, state in self.ingest.states.items()
                if (problem := state.receiver.depacketizer.problem) is not None]
        out += [f"track {index}: {count} Sender Reports from other sources than its RTP's (SSRC churn); "
                f"at most {MAX_PENDING_SOURCES} such sources are kept"
                for index, count in sorted(self.foreign_reports.items()) if count > MAX_PENDING_SOURCES]
        return out

    def sync_stats(self) -> SyncStats | None:
        return self.engine.stats() if self.engine is not None else None

    def set_audio_offset(self, audio_offset_ms: float) -> None:
        """A new audio offset: the running sync engine takes it for the frames from now on (see
        `SyncEngine.set_audio_offset`), and every engine after a reconnection starts with it."""
        self.audio_offset_ms = audio_offset_ms
        if self.engine is not None:
            self.engine.set_audio_offset(audio_offset_ms)

    async def run(self) -> None:
        """Play until `stop()`; without `reconnect`, the first failure is raised."""
        self._loop = asyncio.get_running_loop()
        if self.epoch is None:
            self.epoch = self._loop.time()
        backoff = self.BACKOFF_MIN
        logged: str | None = None
        while not self._stopping:
            self.state = "connecting"
            try:
                client = RtspClient(self.config, self._on_event, on_drained=self._on_drained)
            except ValueError as exc:  # a URL that can never work: say so and stop trying
                self.last_error = RtspError("url", f"{exc} (camera URL {redact_url(self.config.url)})")
                self.state = "stopped"
                log.error("camera %s: %s", self.name, self.last_error)
                if not self.reconnect:
                    raise self.last_error from None
                return
            self.client = client
            try:
                await client.start()
                self.connects += 1
                self.last_error = None  # playing again: the failure before is over
                backoff = self.BACKOFF_MIN
                if logged is not None:
                    log.info("camera %s: playing again", self.name)
                logged = None
                error = await client.wait_closed()
            except RtspError as exc:
                error = exc
            except asyncio.CancelledError:
                await client.close()
                raise
            finally:
                self._cancel_timer()
                self._playing.clear()
                self._flush_merger()
            if self._stopping:
                break
            self.last_error = error
            if not self.reconnect:
                self.state = "stopped"
                if error is not None:
                    log.warning("camera %s: %s", self.name, error)
                    raise error
                return
            reason = str(error or "session ended")
            delay = random.uniform(backoff * (1 - self.BACKOFF_JITTER), backoff)
            if reason != logged:
                log.warning("camera %s: %s; reconnecting (every %.1f s at most)", self.name, reason,
                            self.BACKOFF_MAX)
                logged = reason
            else:
                log.debug("camera %s: %s; reconnecting in %.2f s", self.name, reason, delay)
            self.state = "retrying"
            await asyncio.sleep(delay)
            backoff = min(self.BACKOFF_MAX, backoff * 2)
        self.state = "stopped"

    async def stop(self) -> None:
        self._stopping = True
        if self.client is not None:
            await self.client.close()
        self.state = "stopped"

    def send_backchannel(self, packet: bytes) -> bool:
        """Send an RTP packet to the camera's speaker; False when there is no backchannel."""
        track = self.backchannel
        if track is None or self.client is None or self.state != "playing":
            return False
        self.client.send_rtp(track.index, packet)
        return True

    def _deliver(self, track: int, unit: AccessUnit, now: float) -> None:
        self.on_unit(track, unit)
        if self.engine is None or self.on_frame is None:
            return
        frame = self.engine.push_unit(track, unit, now)
        if frame is None:
            return
        if self._restarted:  # the first frame since a reconnection: the camera's clocks began anew
            self._restarted = False
            frame = dataclasses.replace(frame, reanchored=True, discontinuity=True)
        if self.merger is None:
            self.on_frame(frame)
        else:
            for ready in self.merger.push(frame, now):
                self.on_frame(ready)

    def _flush_merger(self) -> None:
        if self.merger is not None and self.on_frame is not None:
            for frame in self.merger.flush():
                self.on_frame(frame)

    def _on_event(self, event: Event) -> None:
        if self.on_client_event is not None:
            self.on_client_event(event)
        ingest = self.ingest
        if event.__class__ is RtpReceived:
            if ingest is not None:
                now = event.now
                for track, unit in ingest.on_rtp(event.track, event.data, now):
                    self._deliver(track, unit, now)
                self._input_at = now  # `_after_input` runs once the client has passed on all it received
        elif isinstance(event, RtcpReceived):
            if ingest is not None:
                for info in ingest.on_rtcp(event.track, event.data, event.now):
                    ssrc = ingest.states[info.track].receiver.ssrc
                    if ssrc is not None and info.ssrc != ssrc:
                        self.foreign_reports[info.track] = self.foreign_reports.get(info.track, 0) + 1
                    self.on_sender_report(info)
                    if self.engine is not None:
                        self.engine.push_sender_report(info)
                self._after_input(event.now)
        elif isinstance(event, Playing):
            self.tracks = event.tracks
            self.foreign_reports = {}
            self.ingest = CameraIngest(event.tracks, jitter_wait=self.jitter_wait)
            live = [t for t in event.tracks if not t.backchannel]
            assert self.epoch is not None
            self._flush_merger()
            # after a reconnection the tracks' RTP times (and maybe SSRCs) start anew: the first frame says
            # so (`MediaFrame.reanchored`), as the engine's own restarts do, so a recorder ends its run there
            self._restarted = self.engine is not None
            self.engine = SyncEngine([TrackInfo(t.index, t.kind, t.format.clock_rate) for t in live],
                                     epoch=self.epoch, audio_offset_ms=self.audio_offset_ms)
            rtptimes = {t.index: t.rtp_info.rtptime for t in live
                        if t.rtp_info is not None and t.rtp_info.rtptime is not None}
            self.engine.on_play(rtptimes, event.range.clock_start if event.range else None)
            self.merger = FrameMerger(self.merge_hold) if self.merge_hold is not None else None
            self.state = "playing"
            self._playing.set()
            self.on_playing(event.tracks)
        elif isinstance(event, BackchannelUnavailable):
            self.backchannel_note = event.reason
            log.info("camera %s: backchannel unavailable: %s", self.name, event.reason)

    def _on_drained(self) -> None:
        """The client passed on everything it received: receiver reports and timers, once a chunk."""
        now, self._input_at = self._input_at, None
        if now is not None and self.ingest is not None and self.client is not None:
            self._after_input(now)

    def _after_input(self, now: float) -> None:
        assert self.ingest is not None and self.client is not None
        for track, data in self.ingest.receiver_reports(now):
            self.client.send_rtcp(track, data)
        deadline = self._deadline()
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            self._arm(deadline)

    def _deadline(self) -> float | None:
        assert self.ingest is not None
        times = [t for t in (self.ingest.deadline(), self.merger.deadline() if self.merger else None)
                 if t is not None]
        return min(times) if times else None

    def _arm(self, deadline: float) -> None:
        self._cancel_timer()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.ingest is None or self._loop is None:
            return
        now = self._loop.time()
        for track, unit in self.ingest.poll(now):
            self._deliver(track, unit, now)
        if self.merger is not None and self.on_frame is not None:
            for frame in self.merger.poll(now):
                self.on_frame(frame)
        self._after_input(now)
        if self._timer is None:
            deadline = self._deadline()
            if deadline is not None:
                self._arm(max(deadline, now + 0.001))

    async def __aenter__(self) -> CameraSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
