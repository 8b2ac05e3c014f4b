"""G.711 µ-law and A-law (ITU-T G.711) through PyAV's codecs, for 16-bit PCM arrays."""

from __future__ import annotations

import functools

import av
import numpy as np

_CODECS = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}


def encode_g711(pcm: np.ndarray, codec: str, sample_rate: int = 8000) -> bytes:
    """16-bit PCM to G.711 µ-law (`pcmu`) or A-law (`pcma`) bytes with PyAV's encoder."""
    name = _CODECS[codec]
    ctx = av.CodecContext.create(name, "w")
    ctx.sample_rate = sample_rate
    ctx.layout = "mono"
    ctx.format = "s16"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.int16)[None, :], format="s16",
                                       layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    return b"".join(bytes(p) for p in ctx.encode(frame)) + b"".join(bytes(p) for p in ctx.encode(None))


def decode_g711(data: bytes, codec: str, sample_rate: int = 8000) -> np.ndarray:
    """G.711 bytes to 16-bit PCM with PyAV's decoder."""
    name = _CODECS[codec]
    ctx = av.CodecContext.create(name, "r")
    ctx.sample_rate = sample_rate
    ctx.layout = "mono"
    out = [f.to_ndarray().reshape(-1) for f in ctx.decode(av.Packet(data))]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)


class G711Encoder:
    """A kept-open PyAV encoder: 16-bit PCM in, G.711 bytes out, one call per talk frame."""

    def __init__(self, codec: str, sample_rate: int = 8000) -> None:
        self.codec = codec
        self._ctx = av.CodecContext.create(_CODECS[codec], "w")
        self._ctx.sample_rate = sample_rate
        self._ctx.layout = "mono"
        self._ctx.format = "s16"
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> bytes:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.int16)[None, :], format="s16",
                                           layout="mono")
        frame.sample_rate = self._ctx.sample_rate
        frame.pts = self._pts
        self._pts += len(pcm)
        return b"".join(bytes(p) for p in self._ctx.encode(frame))


@functools.cache
def decode_table(codec: str) -> np.ndarray:
    """G.711 code -> float sample in [-1, 1), from FFmpeg's decoder once (256 entries)."""
    return (decode_g711(bytes(range(256)), codec).astype(np.float32) / 32768.0)


@functools.cache
def encode_table(codec: str) -> np.ndarray:
    """int16 sample (offset by 32768) -> G.711 code, from FFmpeg's encoder once (65536 entries)."""
    return np.frombuffer(encode_g711(np.arange(-32768, 32768, dtype=np.int16), codec), np.uint8)


def to_float(data: bytes, codec: str) -> np.ndarray:
    """G.711 bytes to float samples, by table."""
    return decode_table(codec)[np.frombuffer(data, np.uint8)]


def from_float(samples: np.ndarray, codec: str) -> bytes:
    """Float samples in [-1, 1] to G.711 bytes, by table."""
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int32)
    return encode_table(codec)[pcm + 32768].tobytes()
