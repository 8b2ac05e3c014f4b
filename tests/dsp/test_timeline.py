import numpy as np
import pytest

from opticlink.dsp.timeline import TimelineResampler


def clicks(resampler: TimelineResampler, frames: int, pts_of, every: int = 25) -> tuple[np.ndarray, list[float]]:
    out, marks = [], []
    for i in range(frames):
        pcm = np.zeros(160, np.float32)
        if i % every == 0:
            pcm[0] = 1.0
            marks.append(pts_of(i))
        out.append(resampler.push(pcm, round(pts_of(i) * 1e6)))
    out.append(resampler.flush())
    return np.concatenate(out), marks


def positions(out: np.ndarray) -> np.ndarray:
    peaks = np.flatnonzero(out > 0.5)
    groups = np.split(peaks, np.flatnonzero(np.diff(peaks) > 5) + 1)
    return np.array([g[np.argmax(out[g])] for g in groups])


@pytest.mark.parametrize("skew", [300e-6, -300e-6])
def test_samples_land_at_their_timeline_position_despite_clock_skew(skew):
    resampler = TimelineResampler(8000)
    out, marks = clicks(resampler, 3000, lambda i: i * 0.02 * (1 + skew))
    found = positions(out)
    expected = np.array(marks[: len(found)]) * 8000
    assert len(found) == 120
    placement = found - expected
    assert np.abs(placement - placement[0]).max() <= 1  # no drift: within a sample (0.125 ms) over 60 s
    assert abs(placement[0]) <= 3  # and a constant filter latency of a few samples at most
    assert resampler.ratio == pytest.approx(1 + skew, abs=2e-6)


def test_lost_audio_becomes_silence_and_later_audio_stays_in_place():
    resampler = TimelineResampler(8000)
    times = [i * 0.02 for i in range(100)] + [i * 0.02 for i in range(110, 200)]  # 200 ms lost
    out, marks = [], []
    for k, t in enumerate(times):
        pcm = np.zeros(160, np.float32)
        if k % 25 == 0:
            pcm[0] = 1.0
            marks.append(t)
        out.append(resampler.push(pcm, round(t * 1e6)))
    out.append(resampler.flush())
    found = positions(np.concatenate(out))
    assert np.abs(found - np.array(marks) * 8000).max() <= 1
    assert resampler.inserted == pytest.approx(1600, abs=2)
