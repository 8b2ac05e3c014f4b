"""Feedback (howling) detection and ducking for one audio path.

When a talker's speaker and microphone close a loop with the camera's, a frequency whose loop gain
exceeds one grows until it screams. Its signature is a narrow spectral peak that stays at one
frequency and grows (or, once clipped, stays loud), alone: speech and music put their energy in
a series of harmonics of comparable level. Every 10 ms the last 64 ms are analysed (Hann
window). A block is suspicious when its strongest bin stands `peak_db` above the spectrum's
median and `isolation_db` above any other local peak. When suspicious blocks stay at one
frequency (±1 bin) for `hold_ms` (after the window has filled) while rising by 6 dB, or for
`sustain_ms` above `loud_dbfs`, the path is ducked by `duck_db` within 50 ms (well inside the
300 ms a listener tolerates), and restored `release_s` after the peak has gone.
"""

from __future__ import annotations

import numpy as np


class HowlingGuard:
    """Feed frames of one path to `process`; it returns them, ducked while the path howls."""

    def __init__(self, rate: int, *, peak_db: float = 20.0, isolation_db: float = 15.0, hold_ms: float = 200.0,
                 sustain_ms: float = 400.0, loud_dbfs: float = -25.0, duck_db: float = -30.0,
                 release_s: float = 2.0) -> None:
        self.rate = rate
        self.window = 1 << int(np.ceil(np.log2(rate * 0.064)))
        self.hop = rate // 100
        self.peak_db = peak_db
        self.isolation_db = isolation_db
        self.settle = int(np.ceil(self.window / self.hop))  # blocks before a run's levels are comparable
        self.hold = int(hold_ms / 10)
        self.sustain = int(sustain_ms / 10)
        self.loud = loud_dbfs
        self.duck = 10 ** (duck_db / 20)
        self.release = int(release_s * 100)
        self._hann = np.hanning(self.window).astype(np.float32)
        self._history = np.zeros(self.window, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._run_bin = -10
        self._run: list[float] = []  # peak levels (dB) of the current run at one frequency
        self._quiet = 0
        self._gain = 1.0
        self._target = 1.0
        self.howling = False
        self.detections = 0
        self.frequency: float | None = None

    def process(self, pcm: np.ndarray) -> np.ndarray:
        samples = np.concatenate([self._pending, pcm.astype(np.float32)])
        out = np.empty(len(pcm), np.float32)
        written = 0
        start = 0
        while len(samples) - start >= self.hop:
            block = samples[start : start + self.hop]
            self._analyse(block)
            step = (self._target - self._gain) / 5  # reaches the target in 5 blocks: 50 ms
            gains = self._gain + step * np.arange(1, self.hop + 1) / self.hop * 5
            gains = np.clip(gains, min(self._gain, self._target), max(self._gain, self._target))
            self._gain = float(gains[-1])
            take = min(self.hop, len(out) - written)
            out[written : written + take] = block[-take:] * gains[-take:] if take else block[:0]
            written += take
            start += self.hop
        self._pending = samples[start:]
        if written < len(out):  # the tail waits for a whole block: pass it at the current gain
            tail = pcm[written:].astype(np.float32) * self._gain
            out[written:] = tail
        return out

    def _analyse(self, block: np.ndarray) -> None:
        self._history = np.concatenate([self._history[len(block) :], block])
        spectrum = np.abs(np.fft.rfft(self._history * self._hann)) + 1e-12
        peak = int(np.argmax(spectrum[2:])) + 2
        level = 20 * np.log10(spectrum[peak] / (self.window / 4))
        prominence = 20 * np.log10(spectrum[peak] / np.median(spectrum))
        local = (spectrum[1:-1] > spectrum[:-2]) & (spectrum[1:-1] >= spectrum[2:])
        local_peaks = np.flatnonzero(local) + 1
        others = spectrum[local_peaks[np.abs(local_peaks - peak) > 2]]
        isolation = 20 * np.log10(spectrum[peak] / others.max()) if len(others) else 99.0
        narrow = prominence >= self.peak_db and isolation >= self.isolation_db and level > self.loud - 20
        if narrow and abs(peak - self._run_bin) <= 1:
            self._run.append(level)
        elif narrow:
            self._run_bin, self._run = peak, [level]
        else:
            self._run_bin, self._run = -10, []
        rising = len(self._run) >= self.hold + self.settle and self._run[-1] - self._run[-self.hold] >= 6.0
        sustained = len(self._run) >= self.sustain and min(self._run[-self.sustain :]) >= self.loud
        if rising or sustained:
            if not self.howling:
                self.detections += 1
                self.frequency = peak * self.rate / self.window
            self.howling = True
            self._target = self.duck
            self._quiet = 0
        elif self.howling:
            self._quiet += 1
            if self._quiet >= self.release:
                self.howling = False
                self._target = 1.0
