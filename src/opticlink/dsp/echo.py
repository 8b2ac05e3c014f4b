"""Acoustic echo cancellation of a camera's microphone against what we said to its speaker (AEC3).

When someone talks to a camera, its microphone hears its own speaker, and the talker would hear
themselves a moment later. The far end (the talk audio as sent, with the receiver-clock time of its
slot) and the near end (the camera's audio, with its time on the session timeline, which is the
receiver clock too) are laid on one clock, 10 ms block against 10 ms block, so the echo trails
its reference by just the path's delay (network, the camera's playout and capture, the room),
which WebRTC's AEC3 finds and follows by itself. No reference is needed beyond `far_memory`.
"""

from __future__ import annotations

import numpy as np
import soxr
from pywebrtc_audio import AudioProcessor


class EchoCanceller:
    """Cleans near-end frames; `far()` is fed everything sent to the speaker, as it is sent.

    `rate` is the near end's sample rate (the camera's microphone, 8 or 16 kHz); `epoch` is the
    receiver-clock time of timeline zero (seconds), so a frame at `pts_us` was captured around
    `epoch + pts_us / 1e6`.
    """

    def __init__(self, rate: int, epoch: float, *, far_memory: float = 4.0) -> None:
        self.rate = rate
        self.epoch = epoch
        self.block = rate // 100
        self._processor = AudioProcessor(sample_rate=rate, echo_cancellation=True)
        self._far = np.zeros(int(far_memory * rate), np.float32)  # ring, indexed by clock sample
        self._far_until = 0  # clock sample after the last far sample written
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self.far_samples = 0
        self.processed = 0
        self._near_anchor: tuple[int, int] | None = None  # (RTP timestamp, clock sample) of a near frame
        self.lead = 0  # samples the timeline runs ahead of the near end's arrival (see `near`)
        self.near_anchors = 0

    SNAP = 0.002  # seconds: a frame this close to the reference's continuation continues it

    def far(self, pcm: np.ndarray, rate: int, sent_at: float) -> None:
        """Samples (int16 or float) sent to the speaker whose first sample plays at receiver-clock
        time `sent_at` (give or take the camera's constant delay: `TalkPacer`'s slot).

        Slots run on contiguously while talk flows and jump when a talkspurt starts, as the
        camera's speaker does; rounding never leaves a gap or an overlap of a sample or two."""
        samples = pcm.astype(np.float32) / (32768.0 if pcm.dtype == np.int16 else 1.0)
        if rate != self.rate:
            stream = self._resamplers.get(rate)
            if stream is None:
                stream = self._resamplers[rate] = soxr.ResampleStream(rate, self.rate, 1, dtype="float32")
            samples = stream.resample_chunk(samples)
        start = round(sent_at * self.rate)
        if abs(start - self._far_until) <= self.SNAP * self.rate:
            start = self._far_until
        size = len(self._far)
        for i in range(0, len(samples), size):
            chunk = samples[i : i + size]
            index = (start + i) % size
            first = min(len(chunk), size - index)
            self._far[index : index + first] = chunk[:first]
            self._far[: len(chunk) - first] = chunk[first:]
        self._far_until = start + len(samples)
        self.far_samples += len(samples)

    DRIFT = 0.02  # seconds the camera's sample count may drift from the timeline before re-placing
    LEAD_SLACK = 0.2  # seconds a frame may sit before its arrival (network jitter) before `lead` is measured again

    def near(self, pcm: np.ndarray, pts_us: int, rtp_timestamp: int | None = None,
             arrived: float | None = None) -> np.ndarray:
        """A near-end frame (float32) captured at timeline time `pts_us`, with the echo taken out.

        With its RTP timestamp (at the sample rate, as G.711 and L16 have), frames are placed by
        the camera's own sample count from an anchor, not by the timeline, whose slow corrections
        would make the echo's delay creep; a loss leaves its gap. The anchor moves when the count
        and the timeline part by `DRIFT` (camera clock skew, a jump). Frames are processed in whole
        10 ms blocks with no delay (G.711's 20 ms frames); a frame that is not a whole number of
        blocks is returned as it came.

        `arrived` (receiver-clock seconds, when the whole frame was here): the frame was captured
        before it, whatever the timeline says. The timeline is where the frame is shown, in step
        with the video, which may be later than its arrival; placed there, the frame would be
        matched with a reference not sent yet (silence) and nothing would be cancelled. The
        timeline's lead over arrival is taken off from then on (`lead`): it grows to the largest seen
        and is measured again when the timeline falls back by over `LEAD_SLACK`, so a passing spike
        does not leave every later frame placed too early for good."""
        if len(pcm) % self.block:
            return pcm
        timeline = round((self.epoch + pts_us / 1e6) * self.rate)
        clock = timeline - self.lead
        if arrived is not None:
            latest = round(arrived * self.rate) - len(pcm)
            if clock > latest or (self.lead and clock < latest - self.LEAD_SLACK * self.rate):
                self.lead = max(0, timeline - latest)
                clock = timeline - self.lead
                self._near_anchor = None
        if rtp_timestamp is not None:
            anchor = self._near_anchor
            if anchor is not None:
                counted = anchor[1] + (((rtp_timestamp - anchor[0] + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
                if abs(counted - clock) <= self.DRIFT * self.rate:
                    clock = counted
                else:
                    anchor = None
            if anchor is None:
                self._near_anchor = (rtp_timestamp, clock)
                self.near_anchors += 1
        out = np.empty(len(pcm), np.float32)
        near = pcm.astype(np.float32)
        for offset in range(0, len(pcm), self.block):
            out[offset : offset + self.block] = self._processor.process(near[offset : offset + self.block].copy(),
                                                                        self._far_at(clock + offset))
        self.processed += len(pcm)
        return out

    def _far_at(self, clock: int) -> np.ndarray:
        """The far-end block that left at the near block's time (zeros where nothing was sent)."""
        size = len(self._far)
        if clock + self.block <= self._far_until - size or clock >= self._far_until:
            return np.zeros(self.block, np.float32)
        index = np.arange(clock, clock + self.block)
        block = self._far[index % size].copy()
        block[(index >= self._far_until) | (index < self._far_until - size)] = 0.0
        return block
