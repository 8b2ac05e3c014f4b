"""The sync engine, sans-IO: every track of one camera on one timeline.

Each track has two ways to map an RTP timestamp to the receiver's clock:

- *arrival*: the floor of arrival times against media time (`FloorEstimator`), robust to jitter
  and following the track clock's skew. Used before the first Sender Report, after a re-anchor,
  and as the fallback when a track's reports are bogus. The bias between the two mappings (a
  video encoder's delay, say), measured while the reports were good, is taken off, so tracks
  that lose their reports stay aligned with each other.
- *rtcp*: RTP time to the camera's wall clock from the track's Sender Reports
  (`ReportMapping`), then the camera's wall clock to ours through one mapping shared by every
  track of the camera. Any error of the shared mapping moves all tracks together and cannot put
  them out of sync.

Tracks change to report timing together, when the master (audio) has its first report: a video
whose report comes first (seconds first, on some servers) stays on arrival timing, aligned to the
audio by RTP-Info, so the pair is always on one basis. The shared mapping starts then, learnt from
every unit of the tracks on reports; the lone reports of the tracks that waited (one a second, each
with its jitter) would tilt its first fitted skew and run the timeline off the camera's clock.

Mappings improve over time and change mode; frames never jump. Each track's output is its
mapping plus a correction, and every change of the mapping goes into the correction, which then
decays: audio (the master clock) by at most 0.5 ms per second (0.05 %, inaudible, and slow enough
that a recording's audio is never audibly stretched), video towards the
audio's correction by at most 40 ms per second (invisible), so a change of A/V alignment is
applied by moving video while the audio plays on. In a video track's first half second (and the
first half second after it re-anchors), and then until it first reaches the audio's correction
(at most 5 s), video moves to it in a few frames, each step less than a frame period over its
reorder depth, so frames never swap places: a camera or server whose first frames come late or in a
burst (an encoder starting, a GOP cache) leaves a large correction that would otherwise take seconds
at the invisible rate. Corrections beyond 1 s are applied at once.

Video frames come in decode order and leave in it, each with its presentation time and a decode
time (`DecodeTimes`, from the SPS's reorder depth). Arrival floors are taken against decode times:
B-frames are sent after the later frames they reference, not when they are shown.

Timestamp wrap is unwrapped; an SSRC change or a timestamp jump (a camera reboot) re-anchors
that track alone. Times in are seconds on the receiver's monotonic clock; times out are
microseconds from `epoch`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from opticlink.media import AccessUnit, CodecConfig, MediaFrame, VideoConfig
from opticlink.rtp.formats.sps import reorder_depth
from opticlink.sync.decode import DecodeTimes
from opticlink.sync.floor import FloorEstimator
from opticlink.sync.reports import BogusReport, ReportMapping, SenderReportInfo

MASTER_SLEW = 0.0005  # seconds of correction per second on the master (audio) track
VIDEO_SLEW = 0.040  # seconds per second for video following the master
SOLO_VIDEO_SLEW = 0.020  # seconds per second when video has no audio to follow
VIDEO_STARTUP = 0.5  # seconds from a video track's first unit in which it follows the audio at once
VIDEO_STARTUP_MAX = 5.0  # ... and after that until it first reaches the audio's correction, at most this long
STARTUP_STEP = 0.5  # ... moving by at most this share of a frame period a frame (over the reorder depth)
HARD_RESYNC = 1.0  # seconds: a correction this large is applied at once
FALLBACK_HOLD = 600.0  # seconds a track stays on arrival timing after a bogus report
# A report contradicting a series of one is not proof against the series: the first may be the odd one (a
# camera's clock stepped by NTP after its first report, or PLAY's `Range: clock=` anchor, which is less exact
# than a report). The series restarts from the newer one, this many times in a row at most, before the track
# falls back. (GStreamer's server once gave a "+144xx ppm" video report under load in the suite; whether its
# first report was the odd one was not reproduced.)
SERIES_RESTARTS = 2
JUMP_AHEAD = 1.0  # a unit arriving this long before its mapped time: timestamps jumped forward
JUMP_BEHIND = 10.0  # ... this long after, three units in a row: timestamps jumped back
JUMP_IMPOSSIBLE = 60.0  # ... this long after, at once: no network holds media for a minute
DELAY_FLOOR_RISE = 0.001  # seconds per second the remembered delay floor may rise
STALE_REPORT = 10.0  # seconds a report's RTP time may be from the track's current media time
PLAY_ALIGN_SPAN = 5.0  # seconds of media after PLAY in which RTP-Info aligns a track to the master
PLAY_ALIGN_LIMIT = 1.0  # seconds: RTP-Info implying more delay between the tracks than this is not believed

Source = Literal["arrival", "rtcp", "fallback"]


@dataclass(slots=True)
class TrackInfo:
    """What the engine needs of a track: its index, kind and nominal clock rate."""

    index: int
    kind: str
    clock_rate: int


@dataclass(slots=True)
class TrackSyncStats:
    """One track's timing as a user reads it."""

    track: int
    kind: str
    source: Source
    fallback_reason: str | None
    skew_ppm: float | None  # track clock against the camera's wall clock (rtcp) or ours (arrival)
    correction_ms: float  # what the output currently adds to the mapping
    delay_ms: float | None  # how long after its presentation time the latest unit arrived
    sender_reports: int
    bogus_reports: int
    stale_reports: int
    reanchors: int
    hard_resyncs: int
    units: int


@dataclass(slots=True)
class SyncStats:
    """The camera's timeline: per-track stats and the A/V offset being corrected."""

    tracks: list[TrackSyncStats] = field(default_factory=list)
    av_correction_ms: float | None = None  # how we move audio against video, relative to arrival timing
    audio_offset_ms: float = 0.0  # the configured offset included in that
    wall_skew_ppm: float | None = None  # camera wall clock against ours


# Sources whose Sender Reports a track keeps while their RTP has not arrived (reports can come first,
# after PLAY or an encoder restart). A camera has one source per track, two across a restart; past 8
# the oldest source is forgotten, so reports under a new SSRC each time cannot grow memory.
MAX_PENDING_SOURCES = 8


class _Track:
    def __init__(self, info: TrackInfo) -> None:
        self.info = info
        self.rate = info.clock_rate
        self.ssrc: int | None = None
        self.floor = FloorEstimator()
        self.reports = ReportMapping(info.clock_rate)
        self.pending: dict[int, list[SenderReportInfo]] = {}
        self.play_anchor: tuple[int, float] | None = None
        self.play_rtptime: int | None = None  # RTP-Info: this track's RTP time at the play start
        self.bias_from_reports = False
        self.mode: Source = "arrival"
        self.fallback_reason: str | None = None
        self.fallback_until = 0.0
        self.bias: float | None = None
        self.offset = 0.0
        self.last_ts: int | None = None
        self.last_target: float | None = None
        self.last_now: float | None = None
        self.started: float | None = None
        self.starting = True  # a video track in its start-up: it moves to the audio in a few frames
        self.last_arrival = 0.0
        self.last_delay: float | None = None
        self.delay_floor: float | None = None  # slowly rising minimum of arrival - presentation
        self.resume_at: float | None = None  # after a re-anchor: place the first unit by arrival
        self.behind = 0
        self.video_period = 0.04
        self.decode = DecodeTimes()  # video: decode times from presentation times
        self.config: CodecConfig | None = None
        self.last_dts: int | None = None
        self.sender_reports = self.bogus_reports = self.stale_reports = 0
        self.series_restarts = 0  # in a row, see SERIES_RESTARTS
        self.reanchors = self.hard_resyncs = self.units = 0

    def unwrap(self, ts32: int) -> int:
        if self.last_ts is None:
            return ts32
        return self.last_ts + _signed32(ts32 - self.last_ts)

    def restart(self, keep_fallback: bool) -> None:
        self.resume_at = self.delay_floor
        self.play_rtptime = None
        self.started = None  # a restarted video track follows the audio at once again
        self.starting = True
        self.floor.reset()
        self.reports.reset()
        self.decode.reset()
        self.last_ts = self.last_target = self.last_dts = None
        self.behind = 0
        if not (keep_fallback and self.mode == "fallback"):
            self.mode = "arrival"


class SyncEngine:
    """Places one camera's access units on the session timeline.

    `tracks`: the live tracks. `epoch`: receiver time (seconds) of timeline zero.
    `audio_offset_ms`: added to audio presentation times, positive or negative, for cameras whose
    microphone is captured with a fixed offset of its own (positive delays the sound).
    """

    def __init__(self, tracks: Iterable[TrackInfo], *, epoch: float, audio_offset_ms: float = 0.0) -> None:
        self.tracks = {t.index: _Track(t) for t in tracks}
        self.epoch = epoch
        self.audio_offset = audio_offset_ms / 1000
        audio = [t for t in self.tracks.values() if t.info.kind == "audio"]
        video = [t for t in self.tracks.values() if t.info.kind == "video"]
        self.master: _Track | None = (audio or video or [None])[0]
        self._solo_video = not audio
        self.wall_floor = FloorEstimator()  # camera wall clock -> receiver clock

    def set_audio_offset(self, audio_offset_ms: float) -> None:
        """Take a new `audio_offset_ms` for the units from now on (a setting changed at runtime).

        The change moves the audio tracks' mapping, so, as any change of a mapping, it goes into their
        correction and nothing jumps: video moves to the new A/V alignment at `VIDEO_SLEW` while the
        audio plays on, and the audio's own placement then settles by `MASTER_SLEW`. A change of more
        than `HARD_RESYNC` is applied at once, as other corrections are: a step of the audio's placement."""
        change = audio_offset_ms / 1000 - self.audio_offset
        self.audio_offset = audio_offset_ms / 1000
        for track in self.tracks.values():
            if track.info.kind != "audio":
                continue
            if track.delay_floor is not None:  # the remembered delay is against the mapping: keep its meaning
                track.delay_floor -= change
            if track.resume_at is not None:
                track.resume_at -= change
            if abs(change) > HARD_RESYNC and track.last_target is not None:
                track.last_target += change  # not a change of the mapping to slew: the next unit steps
                track.hard_resyncs += 1

    # Inputs -------------------------------------------------------------------------------------

    def on_play(self, rtptimes: dict[int, int], clock_start: float | None) -> None:
        """PLAY's RTP-Info, and `Range: clock=` when the camera gives one.

        Every track's `rtptime` is its RTP time at the same instant (the start of the range), so
        before a track has Sender Reports of its own its arrival mapping is aligned to the
        master's through them, for the first `PLAY_ALIGN_SPAN` seconds (the tracks' clocks drift
        apart by their skew after that; each track's floor follows its own). With an absolute
        start, they are also a first mapping to the camera's wall clock."""
        for index, rtptime in rtptimes.items():
            if index in self.tracks:
                self.tracks[index].play_rtptime = rtptime & 0xFFFFFFFF
                if clock_start is not None:
                    self.tracks[index].play_anchor = (rtptime, clock_start)

    def push_sender_report(self, info: SenderReportInfo) -> None:
        track = self.tracks.get(info.track)
        if track is None:
            return
        if track.ssrc is None or info.ssrc != track.ssrc:
            queue = track.pending.setdefault(info.ssrc, [])
            queue.append(info)
            del queue[:-4]
            while len(track.pending) > MAX_PENDING_SOURCES:
                del track.pending[next(iter(track.pending))]
            return
        self._apply_report(track, info.rtp_timestamp, info.wall_clock, info.arrival)

    def push_unit(self, index: int, unit: AccessUnit, now: float) -> MediaFrame | None:
        """Place one access unit; returns its frame (None for a track the engine does not know)."""
        track = self.tracks.get(index)
        if track is None:
            return None
        reanchored = False
        if unit.ssrc != track.ssrc:
            if track.ssrc is not None:
                self._reanchor(track, keep_fallback=True)
                reanchored = True
            track.ssrc = unit.ssrc
        ts = track.unwrap(unit.timestamp)
        first = track.last_ts is None
        duration = unit.duration / track.rate if unit.duration else 0.0
        if not first:
            # against the mapping without the configured offset: an offset is no jump of the timestamps
            error = unit.arrival - (self._target(track, ts) - self._own_offset(track))
            if error < -JUMP_AHEAD or error > JUMP_IMPOSSIBLE:
                self._reanchor(track, keep_fallback=True)
                reanchored, first = True, True
                ts = unit.timestamp
            elif error > JUMP_BEHIND:
                track.behind += 1
                if track.behind >= 3:
                    self._reanchor(track, keep_fallback=True)
                    reanchored, first = True, True
                    ts = unit.timestamp
            else:
                track.behind = 0
        dts = self._decode_time(track, ts, unit.config)
        xd = dts / track.rate
        # Floors follow decode times: a camera sends a frame once it is encoded, which for a frame
        # followed by B-frames is before they are shown; by presentation time the floor would sit
        # at the reference frames and place the B-frames before they can have arrived.
        track.floor.add(xd, unit.arrival - xd - duration)
        if first:
            track.last_ts = ts  # lets pending reports unwrap against this source
            self._apply_pending(track, unit.arrival)
        if track.mode == "rtcp" and track.reports.ready:
            wall = track.reports.wall_at(dts)
            self.wall_floor.add(wall, unit.arrival - wall - duration)
            self._learn_bias(track, ts)
        elif not track.bias_from_reports:
            self._align_to_master(track, ts)
        target = self._target(track, ts)
        if track.resume_at is not None:
            # first unit after a re-anchor: it arrived with the delay floor the track had before
            track.offset += (unit.arrival - duration - track.resume_at) - target
            track.resume_at = None
        self._slew(track, ts, target, now)
        delay = unit.arrival - duration - target
        if track.delay_floor is None or delay < track.delay_floor:
            track.delay_floor = delay
        elif track.last_now is not None:
            track.delay_floor += DELAY_FLOOR_RISE * max(0.0, now - track.last_now)
        if track.info.kind == "video" and not first and track.last_dts is not None and dts > track.last_dts:
            track.video_period = min(1.0, max(0.005, (dts - track.last_dts) / track.rate))
        track.last_ts, track.last_target, track.last_now, track.last_arrival = ts, target, now, unit.arrival
        track.last_dts = dts
        pts = target + track.offset
        track.last_delay = unit.arrival - duration - pts
        track.units += 1
        duration_us = int((track.video_period if track.info.kind == "video" else duration) * 1e6)
        wall_clock = track.reports.wall_at(ts) if track.mode != "fallback" and track.reports.ready else None
        pts_us = round((pts - self.epoch) * 1e6)
        return MediaFrame(index, track.info.kind, unit.config.codec, pts_us, duration_us,
                          unit.keyframe, unit.data, unit.config, wall_clock, unit.discontinuity or reanchored,
                          unit.timestamp, unit.ssrc, reanchored, dts_us=pts_us - round((ts - dts) * 1e6 / track.rate))

    def _decode_time(self, track: _Track, ts: int, config: CodecConfig) -> int:
        """The unit's decode time in unwrapped ticks: its presentation time, except for video that
        reorders (B-frames), whose decode time comes from the reorder depth."""
        if track.info.kind != "video":
            return ts
        if config is not track.config:
            track.config = config
            sps = b""
            if isinstance(config, VideoConfig) and config.parameter_sets:
                sps = config.parameter_sets[0 if config.codec == "h264" else min(1, len(config.parameter_sets) - 1)]
            track.decode.configure(reorder_depth(config.codec, sps))
        return track.decode.push(ts, round(track.video_period * track.rate))

    # Mappings -----------------------------------------------------------------------------------

    def _arrival_target(self, track: _Track, ts: int) -> float:
        x = ts / track.rate
        floor = track.floor.value(x)
        return x + (floor if floor is not None else 0.0)

    def _report_target(self, track: _Track, ts: int) -> float | None:
        if not track.reports.ready:
            return None
        wall = track.reports.wall_at(ts)
        floor = self.wall_floor.value(wall)
        return None if floor is None else wall + floor

    def _target(self, track: _Track, ts: int) -> float:
        if track.mode == "rtcp":
            target = self._report_target(track, ts)
            if target is None:
                target = self._arrival_target(track, ts)
        else:
            target = self._arrival_target(track, ts) - (track.bias or 0.0)
        return target + self._own_offset(track)

    def _own_offset(self, track: _Track) -> float:
        """What the configured offset adds to this track's mapping (audio only)."""
        return self.audio_offset if track.info.kind == "audio" else 0.0

    def _learn_bias(self, track: _Track, ts: int) -> None:
        """Both mappings are floors, free of jitter: their difference needs no averaging."""
        reported = self._report_target(track, ts)
        if reported is not None:
            track.bias = self._arrival_target(track, ts) - reported
            track.bias_from_reports = True

    def _align_to_master(self, track: _Track, ts: int) -> None:
        """Before a track has reports: its bias from the master's mapping at the same instant,
        the instant given by RTP-Info (a video encoder's delay or a big frame's queueing would
        otherwise put it tens of milliseconds off the audio until its first report)."""
        master = self.master
        if master is None or master is track or track.play_rtptime is None or master.play_rtptime is None:
            return
        if master.last_ts is None or not (master.floor.ready or (master.mode == "rtcp" and master.reports.ready)):
            return
        ticks = _signed32(ts - track.play_rtptime)
        if ticks > PLAY_ALIGN_SPAN * track.rate:  # past the span: the bias stays as it is
            track.play_rtptime = None
            return
        if ticks < -PLAY_ALIGN_LIMIT * track.rate:  # a frame captured just before the play instant counts
            return
        master_ts = master.unwrap((master.play_rtptime + round(ticks * master.rate / track.rate)) & 0xFFFFFFFF)
        bias = self._arrival_target(track, ts) - (self._target(master, master_ts) - self._own_offset(master))
        if abs(bias) > PLAY_ALIGN_LIMIT:  # no encoder or network explains that: RTP-Info is wrong
            track.play_rtptime = None
            track.bias = None
            return
        track.bias = bias

    def _slew(self, track: _Track, ts: int, target: float, now: float) -> None:
        track.offset = self._pending_offset(track)
        elapsed = max(0.0, now - track.last_now) if track.last_now is not None else 0.0
        if track.started is None:
            track.started = now
        master = self.master
        if track is master or master is None:
            goal, rate = 0.0, (SOLO_VIDEO_SLEW if self._solo_video else MASTER_SLEW)
        else:
            goal, rate = self._pending_offset(master), VIDEO_SLEW
            if track.starting:
                step = STARTUP_STEP * track.video_period / (track.decode.depth + 1)
                age = now - track.started
                waiting = age < VIDEO_STARTUP or (master.last_ts is None and age < VIDEO_STARTUP_MAX)
                track.starting = waiting or (age < VIDEO_STARTUP_MAX and abs(goal - track.offset) > step)
            if track.starting:
                # At once, yet by less than a frame period over the frames that may be reordered
                # per frame, so the frames' presentation and decode orders stay as the camera sent them.
                track.offset += max(-step, min(step, goal - track.offset))
                return
        gap = goal - track.offset
        if abs(gap) > HARD_RESYNC:
            track.offset = goal
            track.hard_resyncs += 1
            return
        step = rate * elapsed
        track.offset += max(-step, min(step, gap))

    def _pending_offset(self, track: _Track) -> float:
        """The track's offset as its next unit will have it: with the change of its mapping since
        its last unit taken in, so a follower sees a new report at once, not a unit later."""
        if track.last_ts is None or track.last_target is None:
            return track.offset
        return track.offset - (self._target(track, track.last_ts) - track.last_target)

    # Reports ------------------------------------------------------------------------------------

    def _apply_pending(self, track: _Track, now: float) -> None:
        if track.play_anchor is not None and track.reanchors == 0:
            rtptime, clock = track.play_anchor
            track.play_anchor = None
            self._apply_report(track, rtptime, clock, now)
        for info in track.pending.pop(track.ssrc or 0, []):
            self._apply_report(track, info.rtp_timestamp, info.wall_clock, info.arrival)
        track.pending.clear()

    def _apply_report(self, track: _Track, rtp_timestamp: int, wall: float, arrival: float) -> None:
        if track.last_ts is None:
            return
        ts = track.unwrap(rtp_timestamp)
        if abs(ts - track.last_ts) / track.rate > STALE_REPORT:
            track.stale_reports += 1
            return
        lone = track.reports.count == 1
        try:
            track.reports.add(ts, wall)
        except BogusReport as exc:
            track.bogus_reports += 1
            track.reports.reset()
            if lone and track.mode != "fallback" and track.series_restarts < SERIES_RESTARTS:
                track.series_restarts += 1
                track.reports.add(ts, wall)
                track.sender_reports += 1
                return
            if track.mode != "fallback":
                track.mode = "fallback"
            track.fallback_reason = str(exc)
            track.fallback_until = arrival + FALLBACK_HOLD
            return
        track.sender_reports += 1
        if not lone:
            track.series_restarts = 0
        if track.mode == "fallback":
            if arrival < track.fallback_until or track.reports.count < 3:
                return
            track.mode = "rtcp"
            track.fallback_reason = None
            self.wall_floor.reset()  # the camera's clock may have been stepped meanwhile
        elif track.mode == "arrival" and (track is self.master or self.master is None or self.master.mode == "rtcp"):
            # Tracks change to report timing together with the master: a follower on reports while
            # the master is still on arrival timing would mix two mappings that differ by the
            # camera's and the network's delays, and put A/V off by that until the master's report.
            if all(t.mode != "rtcp" for t in self.tracks.values()):
                # The first track on report timing: the wall clock's floor so far holds only the
                # reports of tracks still on arrival timing (no one used it), one a second, each with
                # its network jitter. Buckets of one report sit milliseconds above those the units
                # fill later, and would tilt the floor's first fitted slope (up to its 1000 ppm clamp
                # with 20 ms of jitter): a timeline running that far from the camera's clock.
                self.wall_floor.reset()
            track.mode = "rtcp"
            if track is self.master:
                for other in self.tracks.values():
                    if other is not track and other.mode == "arrival" and other.reports.ready:
                        other.mode = "rtcp"
        self.wall_floor.add(wall, arrival - wall)

    def _reanchor(self, track: _Track, keep_fallback: bool) -> None:
        track.reanchors += 1
        track.restart(keep_fallback)
        if all(t.mode != "rtcp" for t in self.tracks.values()):
            self.wall_floor.reset()

    # Reading ------------------------------------------------------------------------------------

    def stats(self) -> SyncStats:
        out = SyncStats(audio_offset_ms=self.audio_offset * 1000)
        corrections: dict[str, float] = {}
        for track in self.tracks.values():
            if track.mode == "rtcp" and track.reports.skew_ppm is not None:
                skew = track.reports.skew_ppm
            elif track.floor.ready and track.floor.samples > 100:
                skew = -track.floor.slope * 1e6
            else:
                skew = None
            out.tracks.append(TrackSyncStats(
                track=track.info.index, kind=track.info.kind, source=track.mode,
                fallback_reason=track.fallback_reason, skew_ppm=None if skew is None else round(skew, 2),
                correction_ms=round(track.offset * 1000, 3),
                delay_ms=None if track.last_delay is None else round(track.last_delay * 1000, 2),
                sender_reports=track.sender_reports, bogus_reports=track.bogus_reports,
                stale_reports=track.stale_reports, reanchors=track.reanchors, hard_resyncs=track.hard_resyncs,
                units=track.units))
            if track.last_ts is not None and track.info.kind not in corrections:
                moved = self._target(track, track.last_ts) + track.offset - self._arrival_target(track, track.last_ts)
                corrections[track.info.kind] = moved
        if "audio" in corrections and "video" in corrections:
            out.av_correction_ms = round((corrections["audio"] - corrections["video"]) * 1000, 2)
        if self.wall_floor.ready and self.wall_floor.samples > 100:
            out.wall_skew_ppm = round(self.wall_floor.slope * 1e6, 2)
        return out


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value >= 0x80000000 else value
