"""Decode times from presentation times sent in decode order."""

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from opticlink.rtp.formats.sps import ReorderInfo
from opticlink.sync.decode import LEARN_FRAMES, DecodeTimes

T = 3600  # 25 fps at 90 kHz


def decode_order(display: list[int], pattern: list[int]) -> list[int]:
    return [display[i] for i in pattern]


def gop_pts(gops: int, bframes: int) -> list[int]:
    """Presentation times in decode order of closed GOPs I P B B P B B ... (12 frames a GOP)."""
    out = []
    for g in range(gops):
        base = g * 12
        out.append(base)
        for anchor in range(1 + bframes, 12 + bframes, 1 + bframes):
            anchor = min(anchor, 11)
            out.append(base + anchor)
            out.extend(base + b for b in range(anchor - bframes, anchor) if b > out[-2] - base or b > 0)
    seen, order = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            order.append(p)
    return [p * T for p in order]


def check(pts: list[int], dts: list[int]) -> None:
    assert all(b > a for a, b in pairwise(dts)), "decode times increase"
    assert all(d <= p for d, p in zip(dts, pts, strict=True)), "decoded no later than shown"


def test_two_b_frames_get_ffmpegs_decode_times():
    times = DecodeTimes()
    times.configure(ReorderInfo(1, True))
    pts = [0, 3 * T, 1 * T, 2 * T, 6 * T, 4 * T, 5 * T]
    dts = [times.push(p, T) for p in pts]
    assert dts == [-T, 0, T, 2 * T, 3 * T, 4 * T, 5 * T]
    check(pts, dts)


def test_a_stream_without_b_frames_decodes_as_presented():
    times = DecodeTimes()
    times.configure(ReorderInfo(0, True))
    pts = [i * T for i in range(50)]
    assert [times.push(p, T) for p in pts] == pts


def test_an_undeclared_depth_falls_to_what_the_stream_shows():
    times = DecodeTimes()
    times.configure(ReorderInfo(4, False))
    pts = [i * T for i in range(LEARN_FRAMES + 10)]
    dts = [times.push(p, T) for p in pts]
    check(pts, dts)
    assert dts[-1] == pts[-1] and times.depth == 0


def test_a_stream_deeper_than_declared_raises_the_depth_and_keeps_order():
    times = DecodeTimes()
    times.configure(ReorderInfo(0, True))
    pts = gop_pts(5, 2)
    dts = [times.push(p, T) for p in pts]
    assert times.depth >= 1 and times.violations >= 1
    assert all(d <= p for d, p in zip(dts[12:], pts[12:], strict=True))
    assert all(b > a for a, b in pairwise(dts[12:]))


@given(st.integers(0, 3), st.integers(1, 6))
def test_any_gop_with_its_declared_depth_is_valid(bframes, gops):
    pts = gop_pts(gops, bframes)
    depth = max((sum(1 for q in pts[:i] if q > p) for i, p in enumerate(pts)), default=0)
    times = DecodeTimes()
    times.configure(ReorderInfo(depth, True))
    dts = [times.push(p, T) for p in pts]
    check(pts, dts)
    assert times.violations == 0
