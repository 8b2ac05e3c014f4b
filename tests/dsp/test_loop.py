"""The audio loop test's core: a sweep found in synthetic microphone audio with a known delay and level."""

import numpy as np
import pytest

from opticlink.dsp.loop import HALF_DUPLEX_DB, LoopRecording, chirp, detect
from opticlink.sim.echo import room_impulse_response

RATE = 8000


def _loop(delay_s: float, gain_db: float | None, *, noise_db: float = -40, reverb: bool = False,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """0.4 s of silence, the sweep, 1.5 s of silence sent; heard: the sweep `delay_s` later at
    `gain_db` (through a room when `reverb`) in white noise at `noise_db` dBFS RMS."""
    sweep = chirp(RATE).astype(np.float64)
    sent = np.zeros(round(2.4 * RATE))
    start = round(0.4 * RATE)
    sent[start : start + len(sweep)] = sweep
    rng = np.random.default_rng(seed)
    heard = rng.standard_normal(len(sent)) * 10 ** (noise_db / 20)
    if gain_db is not None:
        path = room_impulse_response(RATE) if reverb else np.array([1.0])
        echo = np.convolve(sent, path)[: len(sent)] * 10 ** (gain_db / 20)
        size = 2 * len(echo)  # a fractional delay, exact: a phase ramp on the spectrum
        ramp = np.exp(-2j * np.pi * np.fft.rfftfreq(size, 1 / RATE) * delay_s)
        heard += np.fft.irfft(np.fft.rfft(echo, size) * ramp, size)[: len(echo)]
    return sent, heard


@pytest.mark.parametrize(("delay_ms", "gain_db"), [(150.0, -6.0), (37.3, -20.0), (412.6, 3.0), (0.0, -10.0)])
def test_the_delay_is_found_within_a_millisecond_and_the_level_within_a_decibel(delay_ms, gain_db):
    sent, heard = _loop(delay_ms / 1000, gain_db)
    found = detect(sent, heard, RATE)
    assert found.found and found.psr_db > 25
    assert found.delay_ms == pytest.approx(delay_ms, abs=1.0)
    assert found.level_db == pytest.approx(gain_db, abs=1.0)


def test_a_reverberant_room_gives_the_direct_paths_delay_and_the_whole_echos_level():
    sent, heard = _loop(0.150, -6.0, reverb=True)
    found = detect(sent, heard, RATE)
    assert found.found
    assert found.delay_ms == pytest.approx(150.0, abs=1.0)
    assert found.level_db == pytest.approx(-6.0, abs=1.5)
    assert found.recommendation() == "echo cancellation is enough"


def test_a_quiet_echo_in_loud_noise_is_still_found():
    sent, heard = _loop(0.2, -20.0, noise_db=-30, seed=3)  # the echo 10 dB under the noise (and 11 below the sweep)
    found = detect(sent, heard, RATE)
    assert found.found and found.delay_ms == pytest.approx(200.0, abs=1.0)
    assert found.level_db == pytest.approx(-20.0, abs=2.0)


@pytest.mark.parametrize("seed", range(5))
def test_no_echo_is_not_found(seed):
    sent, heard = _loop(0.150, None, noise_db=-30, seed=seed)
    found = detect(sent, heard, RATE)
    assert not found.found and found.delay_ms is None
    assert found.recommendation().startswith("the chirp did not come back")


def test_silence_is_not_found():
    sent, _ = _loop(0.1, None)
    assert not detect(sent, np.zeros_like(sent), RATE).found


def test_a_loud_echo_asks_for_half_duplex():
    sent, heard = _loop(0.1, HALF_DUPLEX_DB + 3)
    found = detect(sent, heard, RATE)
    assert found.found and found.level_db is not None and found.level_db >= HALF_DUPLEX_DB
    assert found.as_dict()["half_duplex"] and found.recommendation().startswith("use half-duplex")


def test_the_sweep_is_faded_banded_and_at_a_safe_level():
    sweep = chirp(RATE)
    assert len(sweep) == RATE // 2 and abs(sweep[0]) < 1e-3 and abs(sweep[-1]) < 1e-3
    assert np.max(np.abs(sweep)) == pytest.approx(10 ** (-12 / 20), rel=0.01)
    spectrum = np.abs(np.fft.rfft(sweep)) ** 2
    freqs = np.fft.rfftfreq(len(sweep), 1 / RATE)
    assert spectrum[(freqs >= 280) & (freqs <= 3420)].sum() > 0.98 * spectrum.sum()


def test_a_recording_places_chunks_by_their_times_and_resamples_what_was_sent():
    """Sent at 16 kHz in 20 ms chunks with their slots, heard at 8 kHz in 20 ms frames 150 ms later."""
    origin = 100.0
    sweep16 = chirp(16000)
    sent16 = np.concatenate([np.zeros(6400, np.float32), sweep16, np.zeros(16000, np.float32)])
    recording = LoopRecording(origin)
    for i in range(0, len(sent16), 320):
        recording.far((sent16[i : i + 320] * 32767).astype(np.int16), 16000, origin + i / 16000)
    _, heard = _loop(0.150, -6.0)
    for i in range(0, len(heard), 160):
        at = origin + i / RATE
        recording.near(heard[i : i + 160], RATE, at, arrived=at + 0.020 + 0.005)
    found, round_trip = recording.result()
    assert found.found and found.level_db == pytest.approx(-6.0, abs=1.0)
    assert found.delay_ms == pytest.approx(150.0, abs=1.0)  # soxr's own delay is compensated by its stream
    assert round_trip is not None and 0.150 < round_trip < 0.150 + 0.030


@pytest.mark.parametrize(("beep_at", "within_db"), [(0.1, 1.0), (0.7, 3.0)])
def test_a_loud_beep_of_the_cameras_own_in_the_noise_or_the_echo_changes_the_level_little(beep_at, within_db):
    """The simulator's cameras beep at 1 kHz, -12 dBFS, 100 ms each second: before the sweep (the noise's
    median ignores it), or over the echo just as the sweep's echo passes 1 kHz, where it adds to it."""
    sent, heard = _loop(0.150, -6.0)
    t = np.arange(round(0.1 * RATE)) / RATE
    at = round(beep_at * RATE)
    heard[at : at + len(t)] += 0.25 * np.sin(2 * np.pi * 1000 * t)
    found = detect(sent, heard, RATE)
    assert found.found and found.delay_ms == pytest.approx(150.0, abs=1.0)
    assert found.level_db == pytest.approx(-6.0, abs=within_db)
