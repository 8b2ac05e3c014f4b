"""Echo cancellation and the howling guard on voice-like signals, sans-IO."""

from collections.abc import Callable

import numpy as np
import pytest

from opticlink.dsp.echo import EchoCanceller
from opticlink.dsp.g711 import from_float, to_float
from opticlink.dsp.howling import HowlingGuard
from opticlink.media import AudioConfig, MediaFrame
from opticlink.sim.echo import EchoPath
from opticlink.sim.voice import synthetic_speech
from opticlink.talk.return_path import ReturnPath

RATE = 8000


def run_canceller(delay_ms: float, seconds: float, near_talk: np.ndarray | None = None, slew: float = 0.0,
                  lead: float | Callable[[float], float] = 0.0):
    """`slew`: the timeline's correction of the camera's audio, seconds per second (the sync
    engine moves audio by up to 0.5 ms/s); the camera's RTP timestamps count on regardless.
    `lead`: the timeline shows the camera's audio this much after it arrives (in step with a later
    video); each frame is processed as its last sample arrives."""
    far = synthetic_speech(seconds, RATE, seed=1)
    path = EchoPath(RATE, delay_ms=delay_ms, gain_db=0.0)
    canceller = EchoCanceller(RATE, epoch=100.0)  # the timeline starts at receiver time 100 s
    echoes, outs = [], []
    for start in range(0, len(far) - 159, 160):
        t = 100.0 + start / RATE
        canceller.far(far[start : start + 160], RATE, t)
        path.play(far[start : start + 160], t)
        echo = path.render(t, 160)
        mic = echo + (near_talk[start : start + 160] if near_talk is not None else 0)
        echoes.append(echo)
        ahead = lead(t - 100.0) if callable(lead) else lead
        pts = round((t - 100.0 + slew * (t - 100.0) + ahead) * 1e6)
        outs.append(canceller.near(mic.astype(np.float32), pts, (12345 + start) & 0xFFFFFFFF, t + 160 / RATE))
    return np.concatenate(echoes), np.concatenate(outs)


@pytest.mark.parametrize("delay_ms", [50, 400])
def test_echo_is_cancelled_by_35_db_two_seconds_after_talk_starts(delay_ms):
    echo, out = run_canceller(delay_ms, 6.0)
    window = slice(2 * RATE, None)
    assert 10 * np.log10(np.mean(echo[window] ** 2) / np.mean(out[window] ** 2)) >= 35


def test_the_echo_delay_holds_still_while_the_timeline_slews():
    echo, out = run_canceller(150, 10.0, slew=0.0005)
    window = slice(2 * RATE, None)
    assert 10 * np.log10(np.mean(echo[window] ** 2) / np.mean(out[window] ** 2)) >= 35


def test_a_timeline_that_shows_the_audio_after_it_arrived_does_not_hide_the_reference():
    # a microphone frame placed where nothing has been sent yet would be matched with silence:
    # 0.7 dB of cancellation, as a doorbell test saw with the timeline 40 ms ahead of arrival
    echo, out = run_canceller(150, 6.0, lead=0.06)
    window = slice(2 * RATE, None)
    assert 10 * np.log10(np.mean(echo[window] ** 2) / np.mean(out[window] ** 2)) >= 35


def test_a_passing_lead_of_half_a_second_is_not_taken_off_for_good():
    # a timeline once 0.5 s ahead of arrival, then back: placed 0.5 s early ever after, the echo would
    # trail its reference by 0.65 s
    echo, out = run_canceller(150, 10.0, lead=lambda t: 0.5 if 2.0 <= t < 3.0 else 0.0)
    window = slice(6 * RATE, None)
    assert 10 * np.log10(np.mean(echo[window] ** 2) / np.mean(out[window] ** 2)) >= 35


def test_near_end_speech_survives_double_talk_within_6_db():
    talker = synthetic_speech(8.0, RATE, pitch_hz=210, seed=5)
    talker[: 4 * RATE] = 0
    _, out = run_canceller(150, 8.0, talker)
    window = slice(int(4.5 * RATE), 8 * RATE)
    assert abs(10 * np.log10(np.mean(out[window] ** 2) / np.mean(talker[window] ** 2))) <= 6


def test_howling_guard_leaves_speech_and_beeps_and_ducks_a_growing_howl_within_300_ms():
    speech = synthetic_speech(6.0, RATE)
    t = np.arange(6 * RATE) / RATE
    beeps = np.where((t % 1) < 0.1, 0.3 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
    for signal in (speech, beeps, speech + beeps * 0.5):
        guard = HowlingGuard(RATE)
        for i in range(0, len(signal), 160):
            guard.process(signal[i : i + 160])
        assert guard.detections == 0
    guard = HowlingGuard(RATE)
    tt = np.arange(2 * RATE) / RATE
    howl = np.clip(0.001 * np.exp(tt * 8) * np.sin(2 * np.pi * 2200 * tt), -1, 1).astype(np.float32)
    signal = speech[: 2 * RATE] * 0.3 + howl
    out = np.concatenate([guard.process(signal[i : i + 160]) for i in range(0, len(signal), 160)])
    audible = np.argmax(np.abs(howl) > 10 ** (-30 / 20)) / RATE
    ducked = np.argmax((np.arange(len(out)) / RATE > audible) & (np.abs(out) < 0.1 * np.abs(signal) + 1e-6)) / RATE
    assert guard.detections == 1 and guard.frequency == pytest.approx(2200, abs=20)
    assert ducked - audible <= 0.3


def test_simulated_echo_comes_back_after_the_delay():
    path = EchoPath(RATE, delay_ms=150, gain_db=0.0, t60=0.05)
    click = np.zeros(160, np.float32)
    click[0] = 1.0
    path.play(click, 1.0)
    heard = path.render(1.0, RATE)
    assert np.argmax(np.abs(heard)) / RATE == pytest.approx(0.150, abs=0.001)


def test_return_path_cleans_g711_frames_in_their_own_codec_and_leaves_them_alone_when_nobody_talks():
    config = AudioConfig("pcmu", RATE)
    path = ReturnPath(lambda: 0.0)
    quiet = MediaFrame(1, "audio", "pcmu", 0, 20000, True, from_float(np.full(160, 0.1, np.float32), "pcmu"), config)
    assert path.process(quiet, now=10.0) is quiet
    far = synthetic_speech(3.0, RATE)
    echo_path = EchoPath(RATE, delay_ms=100, gain_db=0.0)
    cleaned = []
    for start in range(0, len(far) - 159, 160):
        t = start / RATE
        path.far(far[start : start + 160], RATE, t)
        echo_path.play(far[start : start + 160], t)
        frame = MediaFrame(1, "audio", "pcmu", round(t * 1e6), 20000, True,
                           from_float(echo_path.render(t, 160), "pcmu"), config)
        out = path.process(frame, now=t + 160 / RATE)  # as its last sample arrives
        assert (out.pts_us, out.codec, len(out.data)) == (frame.pts_us, "pcmu", 160)
        cleaned.append((to_float(frame.data, "pcmu"), to_float(out.data, "pcmu")))
    before = np.concatenate([b for b, _ in cleaned[100:]])
    after = np.concatenate([a for _, a in cleaned[100:]])
    assert 10 * np.log10(np.mean(before**2) / np.mean(after**2)) > 20  # through G.711 both ways
