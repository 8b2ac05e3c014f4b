"""The audio loop test, sans-IO: a chirp for the camera's speaker, and finding it in its microphone.

A linear sweep (300-3400 Hz, 0.5 s, faded in and out, at a safe level) is sent to the speaker;
what was sent and what the microphone heard are laid on one clock (`LoopRecording`: samples fed
with their receiver-clock times, as the echo canceller is), and `detect()` cross-correlates the
heard audio, band-limited to the sweep, against what was sent (a matched filter: the sweep
compresses to a sharp peak). The echo's delay is its first arrival (the direct path: a room's
reflections come later, and may be stronger together but not alone), refined to a fraction of a
sample; its level is the matched filter's energy over the echo (reverberation included, as the
canceller sees it) against the sweep's own, less what noise alone gives (its median) before the sweep left;
the detection's confidence is the peak-to-sidelobe ratio (PSR): the peak against the RMS of the
correlation's envelope away from the echo. Without a peak `FOUND_PSR_DB` above its sidelobes, the
sweep did not come back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

CHIRP_LOW_HZ = 300.0
CHIRP_HIGH_HZ = 3400.0  # G.711's band: every camera's speaker and microphone pass it
CHIRP_S = 0.5
CHIRP_LEVEL_DBFS = -12.0  # peak: loud enough to come back well above a room's noise, never clipping
CHIRP_FADE_S = 0.02  # raised-cosine fades: no click at either end
# A matched filter over noise alone gives a PSR of about 10 dB (the largest of some thousands of
# Rayleigh-distributed envelope values against their RMS); the sweep's echo at -20 dB in as loud
# a noise still gives 25 dB or more (its time-bandwidth product is 1550, 32 dB of gain).
FOUND_PSR_DB = 16.0
# Echo at least this loud against what was sent (energy, reverberation included): the speaker
# drowns the microphone, and an echo canceller leaves audible echo, or worse, when the echo path
# is not linear (a speaker overdriven, a microphone that clips); below it, AEC3 cancels it.
HALF_DUPLEX_DB = 0.0
CLIP_LEVEL = 0.98  # microphone samples this close to full scale: the echo path is not linear
FIRST_ARRIVAL = 0.5  # the first peak at least this share of the largest is the direct path
TAIL_S = 0.3  # a room's reverberation after the direct path: in the echo's level, out of the sidelobes
GUARD_S = 0.005  # the peak's own main lobe, out of the sidelobes too


def chirp(rate: int, *, seconds: float = CHIRP_S, low: float = CHIRP_LOW_HZ, high: float = CHIRP_HIGH_HZ,
          level_dbfs: float = CHIRP_LEVEL_DBFS, fade: float = CHIRP_FADE_S) -> np.ndarray:
    """A linear sweep from `low` to `high` Hz at `rate`, float32 in [-1, 1], peak at `level_dbfs`."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    phase = 2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds))
    out = np.sin(phase) * 10 ** (level_dbfs / 20)
    ramp = round(fade * rate)
    if ramp:
        window = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        out[:ramp] *= window
        out[n - ramp :] *= window[::-1]
    return out.astype(np.float32)


@dataclass(frozen=True, slots=True)
class LoopResult:
    """What came back. `delay_ms`: from a sample leaving to its echo in the microphone (the session
    timeline); `level_db`: the echo's energy against what was sent; `psr_db`: the confidence."""

    found: bool
    psr_db: float
    delay_ms: float | None = None
    level_db: float | None = None
    clipped: bool = False

    def recommendation(self) -> str:
        """The advice in plain words."""
        if not self.found:
            return ("the chirp did not come back: the camera's microphone does not hear its speaker (good), "
                    "or the speaker is silent")
        if self.clipped or (self.level_db is not None and self.level_db >= HALF_DUPLEX_DB):
            return "use half-duplex: the camera hears its speaker loudly"
        return "echo cancellation is enough"

    def as_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(float(x), 1)

        return {"found": self.found, "psr_db": r(self.psr_db), "echo_delay_ms": r(self.delay_ms),
                "echo_level_db": r(self.level_db), "clipped": self.clipped,
                "half_duplex": self.found and self.recommendation().startswith("use half-duplex"),
                "recommendation": self.recommendation()}


def _band(x: np.ndarray, rate: int, low: float, high: float, size: int) -> np.ndarray:
    """`x` in the band [low, high] Hz, as its spectrum of FFT `size`."""
    spectrum = np.fft.rfft(x, size)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return spectrum


def detect(sent: np.ndarray, heard: np.ndarray, rate: int, *, max_delay: float = 1.0,
           low: float = CHIRP_LOW_HZ, high: float = CHIRP_HIGH_HZ) -> LoopResult:
    """Find `sent` (silence around a sweep) in `heard`: both float, on one clock (sample i of each
    at the same time). Echoes up to `max_delay` seconds are looked for; what `heard` holds before
    the sweep left is the noise its level is measured against."""
    sent = np.asarray(sent, np.float64)
    heard = np.asarray(heard, np.float64)
    length = max(len(sent), len(heard))
    sent = np.pad(sent, (0, length - len(sent)))
    heard = np.pad(heard, (0, length - len(heard)))
    active = np.flatnonzero(np.abs(sent) > 1e-6)
    if len(active) == 0:
        raise ValueError("nothing was sent")
    start, stop = int(active[0]), int(active[-1]) + 1
    size = 1 << int(np.ceil(np.log2(2 * length)))
    sent_spectrum = np.fft.rfft(sent, size)
    cross = _band(heard, rate, low, high, size) * np.conj(sent_spectrum)  # the matched filter, every lag
    # the envelope: the analytic signal of the correlation (its negative frequencies dropped)
    analytic = np.zeros(size, complex)
    analytic[: len(cross)] = cross
    analytic[1 : len(cross) - 1] *= 2
    envelope = np.abs(np.fft.ifft(analytic))
    correlation = np.fft.irfft(cross, size)
    lags = np.arange(-start, min(round(max_delay * rate), length - start))  # before the sweep left: noise alone
    env = envelope[lags % size]
    largest = float(env[lags >= 0].max()) if np.any(lags >= 0) else 0.0
    if largest <= 0:
        return LoopResult(False, 0.0)
    first = int(np.flatnonzero((env >= FIRST_ARRIVAL * largest) & (lags >= 0))[0])
    end = first + max(1, round(0.001 * rate))
    peak = first + int(np.argmax(env[first:end]))
    lag = int(lags[peak])
    aside = (lags < lag - GUARD_S * rate) | (lags > lag + TAIL_S * rate)
    sidelobe = float(np.sqrt(np.mean(env[aside] ** 2))) if np.any(aside) else 0.0
    psr = 20 * np.log10(env[peak] / sidelobe) if sidelobe > 0 else 99.0
    if psr < FOUND_PSR_DB:
        return LoopResult(False, float(psr))
    # sub-sample: the parabola through the correlation's magnitude around the peak
    fine = float(lag)
    values = np.abs(correlation[np.array([lag - 1, lag, lag + 1]) % size])
    bend = values[0] - 2 * values[1] + values[2]
    if bend < 0:
        fine += 0.5 * (values[0] - values[2]) / bend
    # level: the matched filter's energy over the echo (direct path and reverberation) against the sweep's
    # own (its autocorrelation's), less the noise's (per lag, from the lags before the sweep left): noise
    # that is not the sweep (a camera's own beeps, a voice) counts for little, unlike raw energy
    window = np.arange(lag - round(GUARD_S * rate), lag + round(TAIL_S * rate))
    before = np.arange(-start, -round(GUARD_S * rate))
    # per lag, robustly: the envelope's median over noise alone (exponential: mean = median / ln 2, half of
    # it in the real part), so a loud burst in the noise (the camera's own beep) does not count
    noise = float(np.median(envelope[before % size] ** 2)) / np.log(2) / 2 if len(before) else 0.0
    echo = float(np.sum(correlation[window % size] ** 2)) - noise * len(window)
    auto = np.fft.irfft(np.abs(_band(sent, rate, low, high, size)) ** 2, size)
    level = 10 * np.log10(echo / float(np.sum(auto**2))) if echo > 0 else None
    lo, hi = start + lag - round(GUARD_S * rate), min(length, stop + lag + round(TAIL_S * rate))
    clipped = bool(np.max(np.abs(heard[lo:hi])) >= CLIP_LEVEL)
    return LoopResult(True, float(psr), fine / rate * 1000, None if level is None else float(level), clipped)


class LoopRecording:
    """What was sent and what was heard, on one clock: `far()` takes samples sent to the speaker
    with the receiver-clock time their first sample plays (the talk path's slot, as the echo
    canceller takes them), `near()` the camera's audio with the receiver-clock time its first sample
    was captured and, if known, when it reached us. `origin` is the clock's sample 0;
    at most `seconds` are kept of either."""

    SNAP = 0.002  # seconds: a chunk this close to the previous one's end continues it

    def __init__(self, origin: float, *, seconds: float = 10.0) -> None:
        self.origin = origin
        self.seconds = seconds
        self._far: list[tuple[np.ndarray, int, float]] = []
        self._near: list[tuple[np.ndarray, int, float, float | None]] = []
        self._kept = [0.0, 0.0]

    def far(self, pcm: np.ndarray, rate: int, at: float) -> None:
        if self._kept[0] < self.seconds:
            samples = pcm.astype(np.float32) / (32768.0 if pcm.dtype == np.int16 else 1.0)
            self._far.append((samples, rate, at))
            self._kept[0] += len(pcm) / rate

    def near(self, pcm: np.ndarray, rate: int, at: float, arrived: float | None = None) -> None:
        if self._kept[1] < self.seconds:
            self._near.append((np.asarray(pcm, np.float32), rate, at, arrived))
            self._kept[1] += len(pcm) / rate

    @property
    def rate(self) -> int | None:
        """The microphone's sample rate (the clock's), once heard."""
        return self._near[0][1] if self._near else None

    def _place(self, chunks: list[tuple[np.ndarray, int, float]], rate: int) -> np.ndarray:
        """The chunks on the clock at `rate`: placed at their own rate, each rate's whole run then
        resampled at once (no stream's latency to account for)."""
        length = round(self.seconds * 2 * rate)
        out = np.zeros(length, np.float32)
        for chunk_rate in sorted({r for _, r, _ in chunks}):
            run = np.zeros(round(self.seconds * 2 * chunk_rate), np.float32)
            until = None
            for samples, r, at in chunks:
                if r != chunk_rate:
                    continue
                first = round((at - self.origin) * r)
                if until is not None and abs(first - until) <= self.SNAP * r:
                    first = until
                lo, hi = max(0, first), min(len(run), first + len(samples))
                if hi > lo:
                    run[lo:hi] = samples[lo - first : hi - first]
                until = first + len(samples)
            if chunk_rate != rate:
                run = soxr.resample(run, chunk_rate, rate).astype(np.float32)
            n = min(length, len(run))
            out[:n] += run[:n]
        return out

    def result(self, *, max_delay: float = 1.0) -> tuple[LoopResult, float | None]:
        """What `detect` finds, and the round trip (seconds): from the sweep leaving to the frame
        holding its echo's first sample reaching us (None when not found or not known)."""
        rate = self.rate
        if rate is None:
            return LoopResult(False, 0.0), None
        sent = self._place([(s, r, a) for s, r, a in self._far], rate)
        heard = self._place([(s, r, a) for s, r, a, _ in self._near], rate)
        found = detect(sent, heard, rate, max_delay=max_delay)
        if not found.found or found.delay_ms is None:
            return found, None
        left = int(np.flatnonzero(np.abs(sent) > 1e-6)[0]) / rate + self.origin
        back = left + found.delay_ms / 1000
        for samples, chunk_rate, at, arrived in self._near:
            if at <= back < at + len(samples) / chunk_rate and arrived is not None:
                return found, arrived - left
        return found, None
