"""The audio offset changed while the engine runs (a camera's setting edited on the page)."""

import numpy as np
import pytest

from opticlink.sim.faults import Faults
from opticlink.sim.replay import Recording, record, score
from opticlink.sync.engine import SyncEngine


def place_changing_offset(rec: Recording, start_ms: float, at: float, to_ms: float) -> tuple[np.ndarray, SyncEngine]:
    """Presentation times (seconds) of every unit, the offset set to `to_ms` at receiver time `at`."""
    engine = SyncEngine(rec.tracks, epoch=0.0, audio_offset_ms=start_ms)
    engine.on_play(rec.rtp_info, None)
    out = []
    changed = False
    for event in rec.events:
        if event[0] == "report":
            engine.push_sender_report(event[1])
            continue
        if not changed and event[3] >= at:
            engine.set_audio_offset(to_ms)
            changed = True
        frame = engine.push_unit(event[1], event[2], event[3])
        out.append(frame.pts_us / 1e6)
    return np.array(out), engine


def av_error_ms(rec: Recording, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true time, audio's timeline error minus video's, ms) at each video frame."""
    tracks = np.array([e[1] for e in rec.events if e[0] == "unit"])
    truth = np.asarray(rec.truth)
    error = pts - truth
    audio, video = tracks == 1, tracks == 0
    order_a, order_v = np.argsort(truth[audio]), np.argsort(truth[video])
    ta, ea = truth[audio][order_a], error[audio][order_a]
    tv, ev = truth[video][order_v], error[video][order_v]
    return tv, (np.interp(tv, ta, ea) - ev) * 1000


def test_a_new_offset_is_slewed_in_by_moving_video_while_the_audio_plays_on():
    rec = record(Faults(av_offset_ms=80, jitter_ms=20, seed=9), 40, ordered=True)
    pts, engine = place_changing_offset(rec, 0.0, at=15.0, to_ms=80.0)
    tv, av = av_error_ms(rec, pts)
    assert np.median(av[(tv > 5) & (tv < 14.5)]) == pytest.approx(-80, abs=2)  # sound early, before
    assert np.abs(av[tv > 15 + 0.080 / 0.040 + 1]).max() <= 3.0  # corrected within 2 s at 40 ms/s
    steps = score(rec, pts).max_step_ms
    assert steps["audio"] <= 1.0 and steps["video"] <= 10.0  # nothing jumped
    assert engine.stats().audio_offset_ms == pytest.approx(80)
    assert [t.reanchors for t in engine.stats().tracks] == [0, 0]


@pytest.mark.parametrize(("start_ms", "to_ms"), [(0.0, 1500.0), (1500.0, -500.0)])
def test_a_change_over_a_second_steps_the_audio_at_once(start_ms, to_ms):
    rec = record(Faults(jitter_ms=20, seed=11), 30, ordered=True)
    pts, engine = place_changing_offset(rec, start_ms, at=15.0, to_ms=to_ms)
    tv, av = av_error_ms(rec, pts)
    assert np.abs(av[(tv > 5) & (tv < 14.5)] - start_ms).max() <= 3.0
    assert np.abs(av[tv > 15.5] - to_ms).max() <= 3.0
    audio = next(t for t in engine.stats().tracks if t.kind == "audio")
    assert audio.hard_resyncs == 1 and audio.reanchors == 0  # a step, not a restart of the track


def test_an_offset_beyond_a_second_is_not_taken_for_a_timestamp_jump():
    rec = record(Faults(jitter_ms=20, seed=9), 20, ordered=True)
    pts, engine = place_changing_offset(rec, 1500.0, at=1e9, to_ms=0.0)
    assert [t.reanchors for t in engine.stats().tracks] == [0, 0]
    tv, av = av_error_ms(rec, pts)
    assert np.abs(av[tv > 2] - 1500).max() <= 3.0
