"""The simulated camera's speaker heard by its own microphone: the acoustic echo path.

What the backchannel plays comes back into the microphone `delay_ms` after its turn to play (the
camera's playout buffer, the room's propagation and the capture buffer, all in one), through a
room impulse response, at `gain_db` (positive: a loud speaker close to the microphone, as in
doorbells). Packets play by RTP timestamp from the first one's arrival, as a camera's jitter
buffer does; one more than `jitter_ms` late for its turn starts the count again. Times are the
simulator's true time, seconds.
"""

from __future__ import annotations

import numpy as np


def room_impulse_response(rate: int, t60: float = 0.25, seed: int = 1) -> np.ndarray:
    """A direct path followed by an exponentially decaying diffuse tail; unit energy."""
    rng = np.random.default_rng(seed)
    n = int(rate * min(0.3, t60))
    t = np.arange(n) / rate
    h = rng.standard_normal(n) * np.exp(-6.9 * t / t60) * 0.3
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


class EchoPath:
    """Speaker samples in (`play`), the echo they cause in the microphone out (`render`)."""

    def __init__(self, rate: int, *, delay_ms: float = 150.0, gain_db: float = -6.0, t60: float = 0.25,
                 jitter_ms: float = 60.0, seed: int = 1) -> None:
        self.rate = rate
        self.delay = delay_ms / 1000
        self.jitter = jitter_ms / 1000
        self.rir = room_impulse_response(rate, t60, seed) * np.float32(10 ** (gain_db / 20))
        self._origin: float | None = None  # true time of speaker sample 0
        self._speaker = np.zeros(0, np.float32)
        self._next = 0  # index where the speaker continues
        self._anchor: tuple[int, int, float] | None = None  # (ssrc, RTP time, true time) of a turn to play
        self.restarts = 0  # times the playout started again (a packet too late): the echo's delay stepped

    def play(self, pcm: np.ndarray, start: float) -> None:
        """The speaker plays float samples in [-1, 1] from true time `start`."""
        if self._origin is None:
            self._origin = start
        index = max(self._next, round((start - self._origin) * self.rate))
        end = index + len(pcm)
        if end > len(self._speaker):
            self._speaker = np.concatenate([self._speaker, np.zeros(end - len(self._speaker) + self.rate,
                                                                    np.float32)])
        self._speaker[index:end] = pcm
        self._next = end

    def play_packet(self, pcm: np.ndarray, ssrc: int, timestamp: int, arrival: float) -> None:
        """Play an RTP packet's samples by its timestamp, counted from the source's first packet."""
        anchor = self._anchor
        if anchor is not None and anchor[0] == ssrc:
            at = anchor[2] + ((timestamp - anchor[1]) & 0xFFFFFFFF) / self.rate
            if not -0.5 < arrival - at <= self.jitter:  # far too early, or an underrun: start again
                anchor = None
                self.restarts += 1
        if anchor is None or anchor[0] != ssrc:
            anchor = self._anchor = (ssrc, timestamp, arrival)
        self.play(pcm, anchor[2] + ((timestamp - anchor[1]) & 0xFFFFFFFF) / self.rate)

    def render(self, start: float, count: int) -> np.ndarray:
        """The echo in the microphone for `count` samples from true time `start`."""
        if self._origin is None:
            return np.zeros(count, np.float32)
        taps = len(self.rir)
        first = round((start - self.delay - self._origin) * self.rate) - (taps - 1)
        lo, hi = max(0, first), min(len(self._speaker), first + count + taps - 1)
        if hi <= lo:
            return np.zeros(count, np.float32)
        segment = np.zeros(count + taps - 1, np.float32)
        segment[lo - first : hi - first] = self._speaker[lo:hi]
        return np.convolve(segment, self.rir, mode="valid").astype(np.float32)

    @property
    def active_until(self) -> float | None:
        """True time after which the speaker's echo has died away."""
        if self._origin is None:
            return None
        return self._origin + self._next / self.rate + self.delay + len(self.rir) / self.rate
