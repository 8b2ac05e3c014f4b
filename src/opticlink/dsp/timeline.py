"""Audio that follows the timeline: timed frames in, one continuous stream at the nominal rate out.

A camera's audio clock is off nominal by up to a few hundred ppm, and the sync engine's times
say so: 160 samples may span 20.006 ms of the timeline. Writing samples back to back would drift
from the picture by the skew times the duration. This resampler (soxr in variable-rate mode)
holds one frame and resamples it once the next frame's time is known, with the ratio that ends
it exactly where the next one starts (within ±0.5 %, inaudible), so every frame's first sample
lands at its presentation time. A gap that trim cannot close within the frame (lost packets)
becomes silence at once, and audio overlapping what was already written is trimmed at once,
each when it exceeds `gap_ms`, so a loss never shifts the audio that follows it.
"""

from __future__ import annotations

import numpy as np
import soxr

MAX_TRIM = 0.005  # the ratio never moves more than 0.5 % from nominal


class TimelineResampler:
    """Mono float32 frames with presentation times (µs) in; samples at `rate` out, one frame late."""

    def __init__(self, rate: int, *, gap_ms: float = 2.5) -> None:
        self.rate = rate
        self.gap = gap_ms / 1000 * rate
        self._stream = soxr.ResampleStream(rate, rate, 1, dtype="float32", quality="HQ", vr=True)
        self.origin_us: int | None = None  # timeline time of output sample 0
        self._placed = 0.0  # output position (samples) where the held frame starts
        self._held: np.ndarray | None = None
        self._ratio = 1.0
        self.produced = 0
        self.inserted = 0  # samples of silence put in for lost audio
        self.trimmed = 0  # input samples dropped for overlap

    @property
    def ratio(self) -> float:
        """Output samples per input sample used for the last frame (1 + the skew being followed)."""
        return self._ratio

    def push(self, pcm: np.ndarray, pts_us: int) -> np.ndarray:
        """Take one frame; returns the previous frame resampled to end where this one starts."""
        if self.origin_us is None:
            self.origin_us = pts_us
        target = (pts_us - self.origin_us) * self.rate / 1e6
        chunks: list[np.ndarray] = []
        if self._held is not None:
            span = target - self._placed
            natural = len(self._held)
            if span > natural * (1 + MAX_TRIM) + self.gap:  # audio was lost: silence fills the gap
                chunks.append(self._feed(self._held, self._ratio))
                silence = round(target - self._placed)
                if silence > 0:
                    chunks.append(self._feed(np.zeros(silence, np.float32), 1.0))
                    self.inserted += silence
            elif span < natural * (1 - MAX_TRIM) - self.gap:  # overlap: the next frame trims itself
                chunks.append(self._feed(self._held, self._ratio))
            else:
                ratio = span / natural if natural else 1.0
                self._ratio = max(1 - MAX_TRIM, min(1 + MAX_TRIM, ratio))
                chunks.append(self._feed(self._held, self._ratio))
        pcm = pcm.astype(np.float32, copy=False)
        overlap = self._placed - target
        if overlap > self.gap:  # this frame starts inside what is written: drop its early part
            drop = min(len(pcm), round(overlap))
            pcm = pcm[drop:]
            self.trimmed += drop
        self._held = pcm
        out = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        self.produced += len(out)
        return out

    def flush(self) -> np.ndarray:
        chunks = []
        if self._held is not None:
            chunks.append(self._feed(self._held, self._ratio))
            self._held = None
        chunks.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        out = np.concatenate(chunks)
        self.produced += len(out)
        return out

    def _feed(self, pcm: np.ndarray, ratio: float) -> np.ndarray:
        """Feed input at `ratio` output samples per input sample."""
        self._stream.set_io_ratio(self.rate, self.rate * ratio, 0)
        self._placed += len(pcm) * ratio
        return self._stream.resample_chunk(pcm)
