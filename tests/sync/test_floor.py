import random

import pytest

from opticlink.sync.floor import FloorEstimator


def test_floor_sits_under_uniform_jitter_and_learns_the_skew():
    rng = random.Random(1)
    floor = FloorEstimator()
    skew = -300e-6  # a fast clock: arrival minus media time falls
    for i in range(120 * 50):
        x = i * 0.02
        floor.add(x, 0.5 + skew * x + rng.random() * 0.060)
    assert floor.slope == pytest.approx(skew, abs=5e-6)
    assert floor.value(120.0) == pytest.approx(0.5 + skew * 120, abs=0.002)


def test_running_minimum_before_the_first_bucket_and_no_slope_on_a_short_span():
    floor = FloorEstimator()
    floor.add(0.0, 0.030)
    assert floor.value(0.0) == pytest.approx(0.030)
    floor.add(0.02, 0.010)
    assert floor.value(5.0) == pytest.approx(0.010)
    for i in range(2, 200):  # 4 s: still too short to trust a slope
        floor.add(i * 0.02, 0.010 + i * 1e-4)
    assert floor.slope == 0.0


def test_slope_is_clamped_to_a_plausible_clock():
    floor = FloorEstimator()
    for i in range(3000):
        floor.add(i * 0.02, i * 0.02 * 0.01)  # 1 % off: no crystal is that bad
    assert floor.slope == pytest.approx(1e-3)
