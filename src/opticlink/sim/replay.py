"""Replaying a simulated camera through the real receive path, faster than real time, with truth.

`record()` runs a `CameraModel` and `NetworkModel` for some hours of media time and passes every
arrival through the same `TrackReceiver`s a live session uses, recording what the sync engine
would be fed (units and Sender Reports, each with its arrival) and each unit's true capture
time. `score()` then places those units with a timing method (our engine, or a baseline) and
measures the A/V error against the truth. The same recording serves every method, so they are
compared on identical traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from opticlink.media import AccessUnit
from opticlink.rtp.receiver import TrackReceiver
from opticlink.rtp.rtcp import NTP_EPOCH_OFFSET, SenderReport, parse_rtcp
from opticlink.sim.camera import CameraModel
from opticlink.sim.faults import Faults
from opticlink.sim.media import EncodedAudio, VideoClip
from opticlink.sim.network import NetworkModel
from opticlink.sync.engine import VIDEO_STARTUP, SyncEngine, TrackInfo
from opticlink.sync.reports import SenderReportInfo


def tiny_video(fps: int = 25, gop: int = 25) -> VideoClip:
    """A stand-in H.264 clip (one small slice per frame): the engine never decodes."""
    frames = [[bytes([0x65]) + bytes(400)] if i % gop == 0 else [bytes([0x41]) + bytes(60)] for i in range(gop)]
    return VideoClip(frames, [i % gop == 0 for i in range(gop)], Fraction(fps), 64, 64,
                     bytes([0x67, 0x42, 0xC0, 0x1E]), bytes([0x68, 0xCE]))


def silent_audio(seconds: int = 1) -> EncodedAudio:
    return EncodedAudio("pcmu", 8000, data=b"\xff" * (8000 * seconds))


@dataclass(slots=True)
class Recording:
    """What the engine is fed, in order, and the truth of every unit.

    `events` holds ("unit", track, AccessUnit, now) and ("report", SenderReportInfo) tuples.
    `truth[i]` is the true capture time of the i-th unit event (seconds, same clock as arrivals).
    """

    tracks: list[TrackInfo]
    events: list[tuple] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    first_report: float | None = None
    av_offset: float = 0.0
    rtp_info: dict[int, int] = field(default_factory=dict)  # PLAY's RTP-Info rtptime per track


def record(faults: Faults, seconds: float, *, ordered: bool = False, video: VideoClip | None = None,
           audio: EncodedAudio | None = None, progress: Callable[[float], None] | None = None,
           keep_data: bool = False, **model_options: int) -> Recording:
    """Simulate `seconds` of a camera with `faults` through the network and the receivers.

    Without `keep_data`, payloads are dropped as they are recorded (timing needs none of them).
    `model_options` go to the `CameraModel` (such as `video_ts0` and `audio_ts0`)."""
    model = CameraModel(video or tiny_video(), audio or silent_audio(), faults, start=0.0,
                        wall_start=1_800_000_000.0, content=keep_data, **model_options)
    network = NetworkModel(faults.jitter_ms, faults.loss_pct, faults.reorder_pct, ordered=ordered, seed=faults.seed)
    infos = [TrackInfo(i, t.kind, t.format.clock_rate) for i, t in enumerate(model.tracks)]
    receivers = [TrackReceiver(t.format, max_wait=max(0.03, faults.jitter_ms / 1000 * 1.2)) for t in model.tracks]
    rec = Recording(infos, av_offset=faults.av_offset_ms / 1000)
    if faults.rtp_info:
        rec.rtp_info = {i: t.segment.ts_at(0.0) & 0xFFFFFFFF for i, t in enumerate(model.tracks)}
    events, truth = rec.events, rec.truth
    capture = model.capture_time

    def take(track: int, units: list[AccessUnit], now: float) -> None:
        for unit in units:
            if not keep_data:
                unit.data = b""
            events.append(("unit", track, unit, now))
            truth.append(capture(track, unit.ssrc, unit.timestamp))

    step = 1.0
    t = 0.0
    while t < seconds:
        t = min(seconds, t + step)
        network.deliver(model.advance(t))
        for delivery in network.arrivals(t):
            now, emission = delivery.arrival, delivery.emission
            for i, receiver in enumerate(receivers):
                deadline = receiver.deadline()
                if deadline is not None and deadline <= now:
                    take(i, receiver.poll(deadline), deadline)
            if emission.rtcp:
                for packet in parse_rtcp(emission.data):
                    if isinstance(packet, SenderReport):
                        if rec.first_report is None:
                            rec.first_report = now
                        events.append(("report", SenderReportInfo(
                            emission.track, packet.ssrc, packet.ntp_seconds - NTP_EPOCH_OFFSET,
                            packet.rtp_timestamp, now)))
            else:
                take(emission.track, receivers[emission.track].receive(emission.data, now), now)
        if progress is not None:
            progress(t)
    return rec


Placer = Callable[[Recording], np.ndarray]


def place_with_engine(rec: Recording, audio_offset_ms: float | None = None) -> np.ndarray:
    """Presentation times (seconds) our engine gives each unit, in event order."""
    offset = rec.av_offset * 1000 if audio_offset_ms is None else audio_offset_ms
    engine = SyncEngine(rec.tracks, epoch=0.0, audio_offset_ms=offset)
    engine.on_play(rec.rtp_info, None)
    out = np.empty(len(rec.truth))
    reanchored = np.zeros(len(rec.truth), bool)
    i = 0
    for event in rec.events:
        if event[0] == "unit":
            frame = engine.push_unit(event[1], event[2], event[3])
            out[i] = frame.pts_us / 1e6
            reanchored[i] = frame.reanchored
            i += 1
        else:
            engine.push_sender_report(event[1])
    place_with_engine.last_engine = engine  # type: ignore[attr-defined]
    place_with_engine.reanchored = reanchored  # type: ignore[attr-defined]
    return out


def place_by_arrival(rec: Recording) -> np.ndarray:
    """Baseline: each unit stamped with its arrival (a browser player, FFmpeg's wall-clock stamping)."""
    return np.array([e[2].arrival for e in rec.events if e[0] == "unit"])


def place_by_static_offset(rec: Recording) -> np.ndarray:
    """Baseline: RTP time at the nominal rate from each track's first arrival (a fixed "audio delay"
    measured at the start)."""
    first: dict[int, tuple[int, float]] = {}
    last: dict[int, int] = {}
    out = []
    for event in rec.events:
        if event[0] != "unit":
            continue
        track, unit = event[1], event[2]
        rate = rec.tracks[track].clock_rate
        if track not in first:
            first[track] = (unit.timestamp, unit.arrival)
            last[track] = unit.timestamp
        ts = last[track] + (((unit.timestamp - last[track]) + (1 << 31)) % (1 << 32) - (1 << 31))
        last[track] = ts
        out.append(first[track][1] + (ts - first[track][0]) / rate)
    return np.array(out)


@dataclass(slots=True)
class Score:
    """A/V error (audio minus video, ms) at each video frame, and the worst timeline step."""

    before_report: dict[str, float]
    after_report: dict[str, float]
    settled: dict[str, float]  # from 2 s after the first report
    max_step_ms: dict[str, float]  # per kind; video after its first VIDEO_STARTUP seconds
    reanchor_step_ms: dict[str, float]  # per kind, at units the engine flagged as re-anchored
    after_restart: dict[str, float] = field(default_factory=dict)  # 2 s from each re-anchor (a new stream)

    def as_dict(self) -> dict[str, object]:
        return {"before_first_report": self.before_report, "after_first_report": self.after_report,
                "from_2s_after_first_report": self.settled, "max_step_ms": self.max_step_ms,
                "reanchor_step_ms": self.reanchor_step_ms, "within_2s_of_restart": self.after_restart}


def _summary(errors: np.ndarray) -> dict[str, float]:
    if len(errors) == 0:
        return {}
    a = np.abs(errors)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2), "count": len(a)}


def score(rec: Recording, pts: np.ndarray, reanchored: np.ndarray | None = None) -> Score:
    """A/V error at every video frame: audio's timeline error (interpolated at the frame's true
    capture time) minus video's. "Settled" is from 2 s after the first report, leaving out the
    2 s after each re-anchor (a rebooted camera's new stream converges afresh; reported apart).
    Steps: the largest change of a track's error between consecutive units of a track (video
    from its first `VIDEO_STARTUP` seconds on, where it may follow the audio at once), excluding
    gaps of over a second; steps into units in `reanchored` (the camera restarted its stream
    there) are reported apart."""
    tracks = np.array([e[1] for e in rec.events if e[0] == "unit"])
    truth = np.asarray(rec.truth)
    error = pts - truth
    kinds = {t.index: t.kind for t in rec.tracks}
    steps: dict[str, float] = {}
    reanchor_steps: dict[str, float] = {}
    flagged = np.zeros(len(truth), bool) if reanchored is None else reanchored
    per_kind: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for index, kind in kinds.items():
        mask = tracks == index
        order = np.argsort(truth[mask], kind="stable")
        t_sorted, e_sorted, f_sorted = truth[mask][order], error[mask][order], flagged[mask][order]
        per_kind[kind] = (t_sorted, e_sorted)
        if len(t_sorted) > 1:
            jumps = np.abs(np.diff(e_sorted)) * 1000
            valid = np.diff(t_sorted) < 1.0
            if kind == "video":
                valid &= t_sorted[1:] >= t_sorted[0] + VIDEO_STARTUP
            normal = valid & ~f_sorted[1:]
            if normal.any():
                steps[kind] = round(float(jumps[normal].max()), 2)
            if (valid & f_sorted[1:]).any():
                reanchor_steps[kind] = round(float(jumps[valid & f_sorted[1:]].max()), 2)
    if "audio" not in per_kind or "video" not in per_kind:
        return Score({}, {}, {}, steps, reanchor_steps)
    ta, ea = per_kind["audio"]
    tv, ev = per_kind["video"]
    inside = (tv >= ta[0]) & (tv <= ta[-1])
    tv, ev = tv[inside], ev[inside]
    av = (np.interp(tv, ta, ea) - ev) * 1000
    first = rec.first_report if rec.first_report is not None else float("inf")
    settled = tv >= first + 2.0
    restarts = truth[flagged]
    near_restart = np.zeros(len(tv), bool)
    for when in restarts:
        near_restart |= (tv >= when) & (tv < when + 2.0)
    return Score(_summary(av[tv < first]), _summary(av[tv >= first]), _summary(av[settled & ~near_restart]), steps,
                 reanchor_steps, _summary(av[near_restart]))
