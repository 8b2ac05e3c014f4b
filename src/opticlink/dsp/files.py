"""Reading any audio file PyAV can open into mono samples at a chosen rate (soxr resampling)."""

from __future__ import annotations

import os

import av
import numpy as np
import soxr


def read_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """The file's first audio stream as mono float32 in [-1, 1] at `sample_rate`."""
    chunks: list[np.ndarray] = []
    rate = 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        for frame in container.decode(container.streams.audio[0]):
            rate = frame.sample_rate
            data = frame.to_ndarray().astype(np.float32)
            if frame.format.name.startswith("s16"):
                data /= 32768.0
            elif frame.format.name.startswith("s32"):
                data /= 2147483648.0
            if frame.format.is_planar:
                mono = data.mean(axis=0)
            else:
                mono = data.reshape(-1, len(frame.layout.channels)).mean(axis=1)
            chunks.append(mono)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if rate and rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="VHQ")
    return samples.astype(np.float32)
