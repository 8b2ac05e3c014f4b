"""Reorder depth from real encoders' parameter sets, and no crash on any bytes."""

import io

import av
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from opticlink.media import split_annexb
from opticlink.rtp.formats.sps import h264_reorder, h265_reorder, reorder_depth


def encoded_sps(codec: str, params: str, profile: str | None = None) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264" if codec == "libx264" else "hevc") as container:
        options = {"x264-params" if codec == "libx264" else "x265-params": params}
        if profile:
            options["profile"] = profile
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((96, 160, 3), i * 40, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    nalus = split_annexb(buf.getvalue())
    if codec == "libx264":
        return next(n for n in nalus if n[0] & 0x1F == 7)
    return next(n for n in nalus if (n[0] >> 1) & 0x3F == 33)


@pytest.mark.parametrize(("params", "profile", "depth"), [
    ("bframes=0", None, 0),
    ("bframes=1:b-pyramid=none", None, 1),
    ("bframes=2:b-pyramid=none", None, 1),  # B-frames that reference nothing reorder by one
    ("bframes=3:b-pyramid=normal", None, 2),
    ("bframes=0", "baseline", 0),
])
def test_x264_declares_its_reorder_depth(params, profile, depth):
    info = h264_reorder(encoded_sps("libx264", params, profile))
    assert info.depth == depth and info.declared


@pytest.mark.parametrize(("params", "depth"), [("bframes=0", 0), ("bframes=2", 2), ("bframes=4", None)])
def test_x265_declares_its_reorder_depth(params, depth):
    info = h265_reorder(encoded_sps("libx265", params + ":log-level=error"))
    assert info.declared and (info.depth == depth if depth is not None else 1 <= info.depth <= 4)


def sps_without_vui(profile: int, poc_type: int) -> bytes:
    """An H.264 SPS for 320x240 at level 3.0 with no VUI."""
    def ue(v: int) -> str:
        return "0" * ((v + 1).bit_length() - 1) + format(v + 1, "b")
    bits = ue(0) + ue(0) + ue(poc_type) + (ue(0) if poc_type == 0 else "") + ue(1) + "0" + ue(19) + ue(14)
    bits += "110" + "0" + "1"  # frame_mbs_only, direct_8x8, no cropping, no VUI, stop bit
    bits += "0" * (-len(bits) % 8)
    return bytes([0x67, profile, 0, 30]) + int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize(("profile", "poc_type", "depth"), [
    (66, 0, 0),  # Baseline cannot reorder
    (77, 2, 0),  # POC type 2: output order is decode order
    (77, 0, 16),  # Main at level 3.0: MaxDpbMbs 8100 / 300 macroblocks a frame = 27, capped at 16
])
def test_an_sps_without_vui_is_inferred_from_its_profile_and_level(profile, poc_type, depth):
    info = reorder_depth("h264", sps_without_vui(profile, poc_type))
    assert info is not None and info.depth == depth and not info.declared


@given(st.binary(max_size=64), st.sampled_from(["h264", "h265"]))
@example(b"\x67\x64\x00\x1e\xff\xff\xff\xff", "h264")
@example(b"\x42\x01" + b"\xff" * 30, "h265")
def test_any_bytes_give_a_depth_in_range_or_none(data, codec):
    info = reorder_depth(codec, data)
    assert info is None or 0 <= info.depth <= 16
