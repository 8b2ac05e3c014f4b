"""A voice-like test signal: what echo control must handle is speech, not noise.

Glottal pulses at a pitch that wanders around `pitch_hz`, shaped by three formant resonators whose
frequencies move between vowels, gated into syllables (about four a second) with pauses. Noise
suppressors treat it as speech, so echo figures measured on it are not flattered.
"""

from __future__ import annotations

import numpy as np

VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))


def _resonate(x: np.ndarray, freq: float, bandwidth: float, rate: int) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / rate)
    a1, a2 = -2 * r * np.cos(2 * np.pi * freq / rate), r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for i, v in enumerate(x):
        y0 = v - a1 * y1 - a2 * y2
        y[i] = y0
        y2, y1 = y1, y0
    return y


def synthetic_speech(seconds: float, rate: int, *, pitch_hz: float = 120.0, level_db: float = -20.0,
                     seed: int = 1) -> np.ndarray:
    """Mono float32 voice-like signal at `rate`, RMS about `level_db` dBFS while voiced."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = pitch_hz * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = np.cumsum(pitch / rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    out = np.zeros(n)
    syllable = int(rate * 0.25)
    for start in range(0, n, syllable):
        stop = min(n, start + syllable)
        f1, f2, f3 = VOWELS[rng.integers(len(VOWELS))]
        segment = pulses[start:stop] + 0.02 * rng.standard_normal(stop - start)
        formants = ((f1, 80, 1.0), (f2, 100, 0.5), (f3, 120, 0.25))
        voiced = sum(_resonate(segment, f, bw, rate) * g for f, bw, g in formants if f < rate / 2)
        envelope = np.sin(np.linspace(0, np.pi, stop - start)) ** 0.5
        if rng.random() < 0.2:  # pauses between words
            envelope *= 0.0
        out[start:stop] = voiced * envelope
    voiced_rms = np.sqrt(np.mean(out[out != 0] ** 2)) if np.any(out) else 1.0
    return (out / voiced_rms * 10 ** (level_db / 20)).astype(np.float32)
