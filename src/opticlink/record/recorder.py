"""Continuous recording of one camera: a consumer of its frame bus, in segments of about a minute.

Media time and wall time are kept apart (as Moonfire NVR does). **Media time** is a run's recording
clock: a run is an unbroken stretch of recording, and within it media time runs on across segment
files. When the camera has audio, media time *is the camera's audio sample clock* (its RTP
timestamps), as a player's clock is its sound card: the audio is stored exactly as it came, sample
after sample, with a hole the camera left (lost packets) filled with silence of its exact length
(G.711, L16). Video is placed on that clock through the sync engine's timeline: a frame's media time
is its timeline time minus the audio's current timeline-minus-media difference, so a picture sits
beside the sound captured with it even when the camera's audio clock runs 300 ppm fast (18 ms a
minute that sample-counting players would otherwise drift). Without audio (a camera without, or
`record_audio: false`), media time is the camera's video clock (its 90 kHz RTP timestamps), so
frames are as evenly spaced as the camera stamped them. A run's first frames are held until the
sync engine's placement of the picture is steady, and placed then (`record.edges`).

**Wall time** (Unix seconds) comes from the camera's own clock (its RTCP Sender Reports) when it
sends them and agrees with the server's within `MAX_CAMERA_CLOCK_ERROR_S`, else from the server's
clock. Within a segment wall time runs linearly from its start to its end; within a run it is
continuous from segment to segment, and follows its clock at a rate at most `MAX_WALL_RATE_ERROR`
off the media's: a camera clock that drifts, or the switch from the server's clock to the camera's
when its first Sender Report comes, is slewed in a minute at a time. A clock more than
`MAX_WALL_STEP_S` off has stepped (an NTP correction, a camera that set its time): the segment keeps
its media duration and the next one starts at the stepped time.

A run ends (and a gap is indexed, with its cause) when the camera stops sending (offline,
reconnecting), restarts its stream (new SSRC or timestamps), the recorder's queue overflowed, or the
disk is full; recording resumes by itself at the next keyframe. Frames are flushed to disk about once
a GOP, at most `FLUSH_S` apart, so a crash loses at most about that plus one fragment.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opticlink.hub import Gap, Subscription
from opticlink.media import AudioConfig, MediaFrame, VideoConfig
from opticlink.record.edges import RunStart
from opticlink.record.segment import AUDIO_CODECS, SegmentWriter
from opticlink.store.recordings import Recordings
from opticlink.sync import FrameMerger

log = logging.getLogger(__name__)

SEGMENT_S = 60.0  # a new segment at the first keyframe after this long
MAX_SEGMENT_S = 300.0  # ... or after this long whatever the frame (a camera with no keyframes)
FLUSH_S = 0.5  # the longest frames wait in memory before they are written
MERGE_HOLD = 0.3  # seconds a frame waits for the other track, to write both in decode order
BATCH_S = 0.2  # the recorder takes what the bus queued at most this often (the queue is bounded)
GAP_S = 2.0  # no frame for this long: the run ends and a gap begins
MAX_FILL_S = 2.0  # a hole in the camera's audio up to this long is filled with silence; longer ends the run
MAX_CAMERA_CLOCK_ERROR_S = 300.0
MAX_WALL_RATE_ERROR = 0.01  # wall time follows its clock at most 1% faster or slower than media time
MAX_WALL_STEP_S = 2.0  # a clock further off than this stepped: the next segment starts at the new time
DISK_RETRY_S = 10.0  # after a full disk, the next try
INDEX_EVERY_S = 1.0  # the segment's row is updated at most this often while it is written
DECLARE_WAIT_S = 2.0  # the first segment waits this long (of timeline) to see both tracks before declaring them
MAX_PENDING_FRAMES = 1000  # frames held for the declaring wait, whatever their span


@dataclass(slots=True)
class RecorderStats:
    segments: int = 0
    runs: int = 0
    frames: int = 0
    dropped: int = 0  # frames not written (before the first keyframe of a run, overlapping audio)
    silence_samples: int = 0
    writes: int = 0  # write calls that reached the operating system
    bytes: int = 0
    # public, monotonic for the recorder's life (`api.metrics` carries them across a camera restart):
    gaps: int = 0  # recording gaps opened, each indexed with its cause (offline, overflow, disk full, not running)
    frames_skipped: int = 0  # frames lost to the recording: the recorder's queue overflowed, or the disk was full
    error: str | None = None


class _Run:
    """The clock of one run: timeline times to media times."""

    def __init__(self, number: int, origin_us: int) -> None:
        self.number = number
        self.origin_us = origin_us  # timeline time of media time 0
        self.audio_rate = 0
        self.audio_first_rtp: int | None = None
        self.audio_last_rtp = 0
        self.audio_unwrapped = 0  # samples since the first audio frame
        self.audio_origin = 0  # media sample of the first audio frame
        self.audio_next = 0  # media sample where the next audio frame should start
        self.audio_ssrc = 0
        self.offset_us = 0  # timeline minus media time, as the audio says (0 without audio)
        self.by_clock = False  # video placed by its own 90 kHz clock (a segment without audio)
        self._anchor: tuple[int, int] | None = None  # (video ticks, media µs) where the clock was anchored
        self._ticks = 0  # the video's unwrapped RTP time since the run's first video frame
        self._last_rtp: int | None = None

    def video_media(self, frame: MediaFrame) -> tuple[int, int]:
        """A video frame's media times (pts, dts): through the sound's clock when the segment has
        audio, else by the picture's own clock, evenly spaced as the camera stamped it."""
        if self._last_rtp is not None:
            step = (frame.rtp_timestamp - self._last_rtp) & 0xFFFFFFFF
            self._ticks += step - (1 << 32) if step >= 1 << 31 else step
        self._last_rtp = frame.rtp_timestamp
        reorder = frame.pts_us - frame.decode_us
        engine = frame.pts_us - self.origin_us - self.offset_us
        if not self.by_clock:
            self._anchor = None
            return engine, engine - reorder
        if self._anchor is None:
            self._anchor = (self._ticks, engine)
        pts = self._anchor[1] + round((self._ticks - self._anchor[0]) * 1e6 / 90_000)
        return pts, pts - reorder


class Recorder:
    """Records the frames of `subscription` (a `gaps` subscription on the camera's bus) under `root`.

    `server_wall(pts_us)` gives the server's wall time of a timeline time; `record_audio()` whether
    audio is kept (read at each segment start); `why_silent()` what the camera session says when
    frames stop (its state and last error).
    """

    def __init__(self, camera: str, root: Path, recordings: Recordings, subscription: Subscription, *,
                 server_wall: Callable[[int], float], record_audio: Callable[[], bool] = lambda: True,
                 why_silent: Callable[[], str] = lambda: "camera offline", segment_s: float = SEGMENT_S,
                 on_segment_closed: Callable[[], None] | None = None) -> None:
        self.camera = camera
        self.root = root
        self.recordings = recordings
        self.subscription = subscription
        self.server_wall = server_wall
        self.record_audio = record_audio
        self.why_silent = why_silent
        self.segment_s = segment_s
        self.on_segment_closed = on_segment_closed
        self.stats = RecorderStats()
        self._continue_wall: float | None = None
        self._gap_ends: float | None = None
        self._settling: RunStart | None = None  # a run's first frames, until the sync is steady
        self.resume_from: float | None = None  # where the camera's recordings ended before this start
        self._merger = FrameMerger(MERGE_HOLD)
        self._run: _Run | None = None
        self._writer: SegmentWriter | None = None
        self._segment_id: int | None = None
        self._segment_start_us = 0  # media time of the segment's file time 0
        self._segment_wall = 0.0
        self._segment_source = "server"
        self._last_flush = 0.0
        self._last_index = 0.0
        self._last_frame_at: float | None = None
        self._last_pts: dict[int, int] = {}
        self._gap_id: int | None = None
        self._overflow: tuple[Gap | None, int] = (None, 0)  # the bus's gap last seen, and its frames counted
        self._disk_full_until = 0.0
        self._audio_seen: AudioConfig | None = None  # the camera's audio, once it sent some
        self._video_seen = False
        self._declared = False
        self._pending: list[MediaFrame] = []
        self._last_end_wall: float | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"record-{camera}")

    # asyncio adapter -------------------------------------------------------------------------

    async def run(self) -> None:
        """Write what the bus gives until the subscription closes; the writing runs in a thread."""
        loop = asyncio.get_running_loop()
        try:
            while not self.subscription.closed:
                if len(self.subscription):  # frames came during the pause (the steady state): no wait to set up
                    queued = self.subscription.get_nowait()
                else:
                    deadline = self._merger.deadline()
                    timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - loop.time()))
                    queued = []
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            queued = await self.subscription.get()
                now = loop.time()
                frames = [q.frame for q in queued]
                overflow = self.subscription.take_gaps()
                try:
                    await loop.run_in_executor(self._pool, self.process, frames, now, overflow)
                except Exception as exc:  # a bug or a stream the muxer refuses: say so, and go on at the next keyframe
                    log.exception("camera %s: recording failed", self.camera)
                    await loop.run_in_executor(self._pool, self._stop_writing, "recorder error", str(exc), now)
                await asyncio.sleep(BATCH_S)  # frames gather on the bus meanwhile: one hand-off a batch
        finally:
            await loop.run_in_executor(self._pool, self.close)
            self._pool.shutdown(wait=False)

    # the work (in the recorder's thread) -----------------------------------------------------------

    def process(self, frames: list[MediaFrame], now: float, overflow: list | None = None) -> None:
        """Take frames from the bus (through the merger, into decode order) and write them."""
        try:
            if overflow:
                for gap in overflow:
                    self._count_overflow(gap)
                    if gap.frames:
                        self._end_run(now, "recorder overflow",
                                      f"{gap.frames} frames ({gap.bytes} bytes) did not fit the recorder's queue")
            ready: list[MediaFrame] = []
            for frame in frames:
                self._last_frame_at = now
                ready += self._merger.push(frame, now)
            ready += self._merger.poll(now)
            for frame in ready:
                self._write(frame, now)
            if self._last_frame_at is not None and now - self._last_frame_at > GAP_S and self._run is not None:
                for frame in self._merger.flush():
                    self._write(frame, now)
                self._end_run(now, self.why_silent())
            if self._writer is not None and now - self._last_flush >= FLUSH_S:
                self._flush(now)
        except OSError as exc:
            self._disk_error(exc, now)

    def close(self) -> None:
        """Flush and close the segment being written (the service stops). The time until the next
        start is indexed then as a gap ("service not running"): see `resume_from`."""
        try:
            for frame in self._merger.flush():
                self._write(frame, time.monotonic())
            self._end_run(time.monotonic(), "service stopped", silent=True)
        except OSError as exc:
            self._disk_error(exc, time.monotonic())

    def _count_overflow(self, gap: Gap) -> None:
        """Count the frames of a bus gap once: the gap still open comes again, with more frames."""
        last, counted = self._overflow
        new = gap.frames - counted if gap is last else gap.frames
        self.stats.frames_skipped += max(0, new)
        self._overflow = (gap, max(counted, gap.frames) if gap is last else gap.frames)

    def _open_gap(self, start_wall: float, cause: str, detail: str | None = None) -> int:
        """Index a gap in the recording (and count it: `stats.gaps`)."""
        gap = self.recordings.open_gap(self.camera, start_wall, cause, detail)
        self.stats.gaps += 1
        return gap

    def _write(self, frame: MediaFrame, now: float) -> None:
        if now < self._disk_full_until:
            self.stats.dropped += 1
            self.stats.frames_skipped += 1
            return
        if frame.kind == "video":
            self._video_seen = True
        elif isinstance(frame.config, AudioConfig) and frame.config.codec in AUDIO_CODECS:
            self._audio_seen = frame.config
        if not self._declared:
            # the first segment declares its tracks: wait (a little) to learn which the camera sends
            self._pending.append(frame)
            keyframe = any(f.kind == "video" and f.keyframe for f in self._pending)
            span = self._pending[-1].pts_us - self._pending[0].pts_us
            if (keyframe and self._audio_seen is not None) or span > DECLARE_WAIT_S * 1e6 \
                    or len(self._pending) > MAX_PENDING_FRAMES:
                self._declared = True
                pending, self._pending = self._pending, []
                for held in pending:
                    self._dispatch(held, now)
            return
        self._dispatch(frame, now)

    def _dispatch(self, frame: MediaFrame, now: float) -> None:
        if self._settling is not None:
            if frame.reanchored:
                self._settle(now)
            else:
                placed = self._settling.push(frame)
                if placed is not None:
                    self._settling = None
                    for held in placed:
                        self._dispatch_now(held, now)
                return
        config = frame.config
        if self._run is None and self._writer is None and frame.kind == "video" and frame.keyframe \
                and isinstance(config, VideoConfig) and config.complete:
            self._settling = RunStart()  # a run begins: its first frames are placed once the sync is steady
            self._settling.push(frame)
            return
        self._dispatch_now(frame, now)

    def _settle(self, now: float) -> None:
        """Write the frames held at a run's start now, placed (`RunStart.place`)."""
        start, self._settling = self._settling, None
        for frame in start.place() if start is not None else []:
            self._dispatch_now(frame, now)

    def _dispatch_now(self, frame: MediaFrame, now: float) -> None:
        previous = self._last_pts.get(frame.track)
        self._last_pts[frame.track] = frame.pts_us
        if self._run is not None and (frame.reanchored or (previous is not None
                                                           and abs(frame.pts_us - previous) > GAP_S * 1e6)):
            self._end_run(now, "camera restarted its stream" if frame.reanchored else "frames stopped", silent=True)
        if frame.kind == "video":
            self._write_video(frame, now)
        elif frame.kind == "audio" and isinstance(frame.config, AudioConfig):
            self._write_audio(frame, now)

    def _write_video(self, frame: MediaFrame, now: float) -> None:
        config = frame.config
        if not isinstance(config, VideoConfig):
            return
        writer = self._writer
        if writer is None or writer.video_config is None:
            if not frame.keyframe or not config.complete:
                self.stats.dropped += 1
                return
            if writer is not None:  # an audio-only segment and now a picture: a new segment with both
                self._close_segment(now, next_keyframe=frame)
            self._open_segment(frame, now)
            writer = self._writer
            assert writer is not None
        else:
            assert self._run is not None
            age = (self._run.video_media(frame)[1] - self._segment_start_us) / 1e6
            changed = config.parameter_sets != writer.video_config.parameter_sets
            # record_audio switched at runtime: the next segment has (or lacks) the audio track
            audio_switched = (writer.audio_config is not None) != (self._audio_config(frame) is not None)
            if frame.keyframe and config.complete and (age >= self.segment_s or changed or audio_switched):
                self._close_segment(now, next_keyframe=frame)
                if audio_switched:
                    self._run.audio_first_rtp = None  # the sound starts again where the picture is
                self._open_segment(frame, now)
                writer = self._writer
                assert writer is not None
            elif changed and not frame.keyframe:
                self.stats.dropped += 1  # frames of a new picture size before its first keyframe
                return
        assert self._run is not None
        pts, dts = self._run.video_media(frame)
        if frame.keyframe:
            self._flush(now)  # the GOP before goes to disk
        writer.write_video(frame, pts - self._segment_start_us, dts - self._segment_start_us)
        self.stats.frames += 1

    def _write_audio(self, frame: MediaFrame, now: float) -> None:
        config = frame.config
        assert isinstance(config, AudioConfig)
        if config.codec not in AUDIO_CODECS or not self.record_audio():
            return
        if self._writer is None:
            if self._video_seen:
                self.stats.dropped += 1  # waiting for the run's first keyframe
                return
            self._open_segment(frame, now)  # an audio-only camera
        writer = self._writer
        run = self._run
        assert writer is not None and run is not None
        if writer.audio_config is None:
            return  # the segment began without audio (record_audio was off): its next segment has it
        if writer.audio_config.codec != config.codec or writer.audio_config.sample_rate != config.sample_rate:
            self._end_run(now, "camera changed its audio", silent=True)
            return
        rate = config.sample_rate
        samples = config.samples_in(frame.data)
        if run.audio_first_rtp is None or frame.ssrc != run.audio_ssrc:
            run.audio_rate = rate
            run.audio_first_rtp = run.audio_last_rtp = frame.rtp_timestamp
            run.audio_ssrc = frame.ssrc
            run.audio_unwrapped = 0
            run.audio_origin = run.audio_next = max(0, round((frame.pts_us - run.origin_us) * rate / 1e6))
        else:
            step = (frame.rtp_timestamp - run.audio_last_rtp) & 0xFFFFFFFF
            if step >= 1 << 31:
                step -= 1 << 32
            run.audio_unwrapped += step
            run.audio_last_rtp = frame.rtp_timestamp
        start = run.audio_origin + run.audio_unwrapped
        hole = start - run.audio_next
        if abs(hole) > MAX_FILL_S * rate:  # before the offset follows it: the pictures would go back in time
            self._end_run(now, "the camera's audio jumped", silent=True)
            return
        run.offset_us = frame.pts_us - run.origin_us - round(start * 1e6 / rate)
        segment_sample = round(self._segment_start_us * rate / 1e6)
        if hole < 0:
            self.stats.dropped += 1  # audio overlapping what was written (a repeated packet)
            return
        fill_from = max(run.audio_next, segment_sample)
        if start > fill_from and writer.write_silence(fill_from - segment_sample, start - fill_from):
            self.stats.silence_samples += start - fill_from
        data = frame.data
        if start < segment_sample:  # begins before this segment (it came after the keyframe that began it)
            cut = segment_sample - start
            width = config.sample_bytes
            if not width or cut >= samples:
                self.stats.dropped += 1
                run.audio_next = start + samples
                return
            data, start, samples = data[cut * width:], segment_sample, samples - cut
        writer.write_audio(data, start - segment_sample, samples)
        run.audio_next = start + samples
        self.stats.frames += 1
        age = (start + samples) / rate - self._segment_start_us / 1e6
        if writer.video_config is None and not self._video_seen and age >= self.segment_s:
            self._close_segment(now)

    # segments and runs -----------------------------------------------------------------------

    def _open_segment(self, frame: MediaFrame, now: float) -> None:
        if self._run is None:
            self._run = _Run(self.recordings.new_run(self.camera), frame.decode_us)
            self.stats.runs += 1
        run = self._run
        audio = self._audio_config(frame)
        if frame.kind == "video":
            run.by_clock = audio is None
            media_pts, media_dts = run.video_media(frame)
        elif run.audio_first_rtp is not None and run.audio_rate:
            media_pts = media_dts = round(run.audio_next * 1e6 / run.audio_rate)  # the run's next sample
        else:
            media_pts = media_dts = max(0, frame.pts_us - run.origin_us - run.offset_us)
        start_us = media_dts
        wall, source = self._wall(frame)
        wall -= (media_pts - start_us) / 1e6
        if self._continue_wall is not None:  # the run goes on: wall time too, from where the last segment ended
            wall, self._continue_wall = self._continue_wall, None
        if self._gap_id is not None:
            self._gap_ends = wall  # the gap closes once this segment's first frames are on disk
        if self.resume_from is not None:  # the first segment since the service started
            if wall - self.resume_from > GAP_S:
                gap = self._open_gap(self.resume_from, "service not running")
                self.recordings.close_gap(gap, wall)
            self.resume_from = None
        stamp = datetime.fromtimestamp(wall, UTC)
        relative = f"{self.camera}/{stamp:%Y-%m-%d}/{round(wall * 1000)}-r{run.number}.mov"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = SegmentWriter(path, keyframe=frame if frame.kind == "video" else None, audio=audio)
        video_codec = writer.video_config.codec if writer.video_config else None
        self._segment_id = self.recordings.add_segment(
            self.camera, run.number, relative, start_wall=wall, media_start_us=start_us, wall_source=source,
            video_codec=video_codec, audio_codec=audio.codec if audio else None)
        self._writer = writer
        self._segment_start_us = start_us
        self._segment_wall = wall
        self._segment_source = source
        self._last_flush = self._last_index = now
        self.stats.segments += 1

    def _audio_config(self, frame: MediaFrame) -> AudioConfig | None:
        if not self.record_audio():
            return None
        if isinstance(frame.config, AudioConfig):
            return frame.config if frame.config.codec in AUDIO_CODECS else None
        return self._audio_seen

    def _wall(self, frame: MediaFrame) -> tuple[float, str]:
        server = self.server_wall(frame.pts_us)
        if frame.wall_clock is not None and abs(frame.wall_clock - server) < MAX_CAMERA_CLOCK_ERROR_S:
            return frame.wall_clock, "camera"
        return server, "server"

    def _close_segment(self, now: float, *, next_keyframe: MediaFrame | None = None) -> None:
        writer, segment_id, run = self._writer, self._segment_id, self._run
        if writer is None or segment_id is None or run is None:
            return
        writer.close()
        self._close_gap()
        media_end = self._segment_start_us + writer.stats.end_us
        span = media_end - self._segment_start_us
        end_wall = self._segment_wall + span / 1e6
        if next_keyframe is not None:
            wall, _ = self._wall(next_keyframe)
            pts, dts = run.video_media(next_keyframe)
            candidate = wall - (pts - dts) / 1e6
            media_end = dts
            span = (media_end - self._segment_start_us) / 1e6
            error = candidate - (self._segment_wall + span)
            if abs(error) > MAX_WALL_STEP_S:
                end_wall = self._segment_wall + span
                log.warning("camera %s: its clock stepped by %.3f s; wall times follow it from the next segment",
                            self.camera, error)
            else:  # the wall clock is followed at a rate at most MAX_WALL_RATE_ERROR off the media's
                limit = MAX_WALL_RATE_ERROR * span
                end_wall = self._segment_wall + span + max(-limit, min(limit, error))
                self._continue_wall = end_wall
        self._account(writer)
        self._index(segment_id, writer, end_wall=end_wall, media_end_us=media_end, done=True)
        self._writer = None
        self._segment_id = None
        self._last_end_wall = end_wall
        if self.on_segment_closed is not None:
            self.on_segment_closed()

    def _close_gap(self) -> None:
        if self._gap_id is not None and self._gap_ends is not None and self._writer is not None \
                and self._writer.bytes > 0:
            self.recordings.close_gap(self._gap_id, self._gap_ends)
            self._gap_id = self._gap_ends = None

    def _account(self, writer: SegmentWriter) -> None:
        self.stats.writes += writer.file.writes
        self.stats.bytes += writer.bytes
        writer.file.writes = 0

    def _end_run(self, now: float, cause: str, detail: str | None = None, *, silent: bool = False) -> None:
        """Close the run: its segment is closed and indexed, and (unless `silent`) a gap begins."""
        if self._settling is not None:
            self._settle(now)
        if self._writer is not None:
            self._close_segment(now)
        had_run = self._run is not None
        self._run = None
        self._continue_wall = None
        self._last_pts.clear()
        self._merger = FrameMerger(MERGE_HOLD)
        self._last_frame_at = None
        if had_run and not silent and self._gap_id is None:
            start = self._last_end_wall or time.time()
            self._gap_id = self._open_gap(start, cause, detail)
            log.warning("camera %s: recording paused (%s)", self.camera, cause)

    def _flush(self, now: float) -> None:
        writer = self._writer
        if writer is None:
            return
        writer.flush()
        self._last_flush = now
        self._close_gap()
        if now - self._last_index >= INDEX_EVERY_S and self._segment_id is not None:
            self._last_index = now
            self._index(self._segment_id, writer)

    def _index(self, segment_id: int, writer: SegmentWriter, *, end_wall: float | None = None,
               media_end_us: int | None = None, done: bool = False) -> None:
        """The segment's row as far as it is written (its end: where its frames end, unless given)."""
        start = self._segment_start_us
        self.recordings.update_segment(
            segment_id, end_wall=self._segment_wall + writer.stats.end_us / 1e6 if end_wall is None else end_wall,
            media_end_us=start + writer.stats.end_us if media_end_us is None else media_end_us,
            bytes=writer.bytes, frames=writer.stats.video_frames or writer.stats.audio_frames,
            keyframes=[k + start for k in writer.stats.keyframes_us], done=done)

    def _disk_error(self, exc: OSError, now: float) -> None:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self._stop_writing("disk full" if full else "disk error", str(exc), now)

    def _stop_writing(self, cause: str, detail: str, now: float) -> None:
        """Stop at once (the disk is full, the muxer failed) and try again in `DISK_RETRY_S`: the file
        ends at its last flush (recovery cuts a torn fragment off), and a gap says why."""
        self.stats.error = f"{cause}: {detail}"
        log.error("camera %s: recording stopped: %s; trying again in %.0f s", self.camera, self.stats.error,
                  DISK_RETRY_S)
        writer, segment_id = self._writer, self._segment_id
        if writer is not None:
            writer.abandon()
            self._account(writer)
            if segment_id is not None:
                with contextlib.suppress(Exception):
                    self._index(segment_id, writer)  # left "writing": recovery repairs it
        self._writer = None
        self._segment_id = None
        self._run = None
        self._continue_wall = None
        self._last_pts.clear()
        self._merger = FrameMerger(MERGE_HOLD)
        self._disk_full_until = now + DISK_RETRY_S
        if self._gap_id is None:
            with contextlib.suppress(Exception):
                self._gap_id = self._open_gap(self._last_end_wall or time.time(), cause, detail)


