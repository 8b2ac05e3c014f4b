"""The camera's sound on its way to the viewers while someone talks: echo cancelled, feedback ducked.

While talk audio is being sent (and for `tail` seconds after), the camera's audio frames are
decoded, cleaned by the echo canceller against what was sent, passed through a howling guard, and
encoded again in their own codec, with their own times: the viewers' players see no change of
stream. G.711 and L16 are handled; other codecs (AAC) pass as they come, for which the camera's
half-duplex setting is the remedy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opticlink.dsp.echo import EchoCanceller
from opticlink.dsp.g711 import from_float, to_float
from opticlink.dsp.howling import HowlingGuard
from opticlink.media import AudioConfig, MediaFrame

CLEANABLE = ("pcmu", "pcma", "l16")


class ReturnPath:
    """`far()` takes what goes to the camera's speaker; `process()` cleans what comes back.

    `epoch` gives the camera session's timeline epoch (receiver-clock seconds), read when first
    needed because the session sets it when it starts."""

    def __init__(self, epoch: Callable[[], float | None], *, tail: float = 3.0) -> None:
        self.epoch = epoch
        self.tail = tail
        self.echo: EchoCanceller | None = None
        self.guard: HowlingGuard | None = None
        self.last_far: float | None = None
        self._pending_far: list[tuple[np.ndarray, int, float]] = []
        self.cleaned = 0

    def far(self, pcm: np.ndarray, rate: int, sent_at: float) -> None:
        self.last_far = sent_at
        if self.echo is None:
            self._pending_far = [*self._pending_far[-50:], (pcm, rate, sent_at)]
        else:
            self.echo.far(pcm, rate, sent_at)

    def active(self, now: float) -> bool:
        return self.last_far is not None and now - self.last_far <= self.tail

    def process(self, frame: MediaFrame, now: float) -> MediaFrame:
        """The frame cleaned, or as it came when nobody talks or its codec cannot be cleaned."""
        config = frame.config
        if frame.kind != "audio" or not isinstance(config, AudioConfig) or config.codec not in CLEANABLE:
            return frame
        if not self.active(now) and not (self.guard is not None and self.guard.howling):
            return frame
        epoch = self.epoch()
        if epoch is None:
            return frame
        if self.echo is None or self.echo.rate != config.sample_rate:
            self.echo = EchoCanceller(config.sample_rate, epoch)
            self.guard = HowlingGuard(config.sample_rate)
            for pcm, rate, sent_at in self._pending_far:
                self.echo.far(pcm, rate, sent_at)
            self._pending_far = []
        assert self.guard is not None
        if config.codec == "l16":
            samples = np.frombuffer(frame.data, ">i2").astype(np.float32) / 32768.0
            if config.channels != 1:
                return frame
        else:
            samples = to_float(frame.data, config.codec)
        cleaned = self.guard.process(self.echo.near(samples, frame.pts_us, frame.rtp_timestamp, now))
        data = ((np.clip(cleaned, -1, 1) * 32767).astype(">i2").tobytes() if config.codec == "l16"
                else from_float(cleaned, config.codec))
        self.cleaned += 1
        return MediaFrame(frame.track, frame.kind, frame.codec, frame.pts_us, frame.duration_us, frame.keyframe, data,
                          config, frame.wall_clock, frame.discontinuity, frame.rtp_timestamp, frame.ssrc,
                          frame.reanchored)
