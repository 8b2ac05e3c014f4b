"""Decoding a track's audio frames to mono float32 samples (PyAV for G.711 and AAC)."""

from __future__ import annotations

import av
import numpy as np

from opticlink.media import AudioConfig

_PYAV = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw", "aac": "aac"}


class AudioDecoder:
    """Decodes frames of one audio stream; keeps decoder state between frames (AAC needs it)."""

    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        self.sample_rate = config.sample_rate
        self._ctx: av.AudioCodecContext | None = None
        if config.codec in _PYAV:
            ctx = av.CodecContext.create(_PYAV[config.codec], "r")
            ctx.sample_rate = config.sample_rate
            ctx.layout = "mono" if config.channels == 1 else "stereo"
            if config.extra:
                ctx.extradata = config.extra
            self._ctx = ctx
        elif config.codec != "l16":
            raise ValueError(f"cannot decode {config.codec!r} audio")

    def decode(self, data: bytes) -> np.ndarray:
        """One frame's samples, mono float32 in [-1, 1] (channels are averaged)."""
        if self._ctx is None:
            pcm = np.frombuffer(data, ">i2").astype(np.float32) / 32768.0
            channels = max(1, self.config.channels)
            return pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm
        chunks = []
        for frame in self._ctx.decode(av.Packet(data)):
            samples = frame.to_ndarray().astype(np.float32)
            if frame.format.name in ("s16", "s16p"):
                samples /= 32768.0
            if frame.format.is_planar:
                samples = samples.mean(axis=0)
            elif len(frame.layout.channels) > 1:
                samples = samples.reshape(-1, len(frame.layout.channels)).mean(axis=1)
            chunks.append(samples.reshape(-1))
            self.sample_rate = frame.sample_rate
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
