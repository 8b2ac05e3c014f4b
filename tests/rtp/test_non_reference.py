"""Non-reference pictures (H.264 nal_ref_idc 0, H.265 sub-layer non-reference types) found from NAL
headers, and proved by a decoder: a stream with them left out still decodes every other picture."""

import av
import pytest

from opticlink.live.protocol import NON_REFERENCE, encode_frame
from opticlink.media import MediaFrame, VideoConfig, annexb, length_prefixed
from opticlink.rtp.formats import h264, h265
from opticlink.sim.media import synthetic_video


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_pictures_no_other_refers_to_are_found_and_the_rest_decode_without_them(codec):
    clip = synthetic_video(160, 96, 25, 2, codec=codec, bframes=2)
    finder = {"h264": h264.non_reference, "h265": h265.non_reference}[codec]
    flags = [finder(length_prefixed(nalus)) for nalus in clip.frames]
    assert sum(flags) >= len(flags) // 4, flags  # B-frames that are not a pyramid's reference
    assert not any(flag for flag, key in zip(flags, clip.keyframes, strict=True) if key)
    decoder = av.CodecContext.create({"h264": "h264", "h265": "hevc"}[codec], "r")
    decoded = 0
    for flag, nalus in zip(flags, clip.frames, strict=True):
        if not flag:
            decoded += len(decoder.decode(av.Packet(annexb(nalus))))
    decoded += len(decoder.decode(None))
    assert decoded == len(flags) - sum(flags)


def test_the_live_protocol_flags_them_and_never_a_keyframe_or_audio():
    config = VideoConfig("h264", (b"", b""))
    reference = length_prefixed([bytes([0x41, 0x9A])])  # a P slice, nal_ref_idc 2
    disposable = length_prefixed([bytes([0x06, 0x05]), bytes([0x01, 0x9E])])  # SEI, then a slice of nal_ref_idc 0
    frame = MediaFrame(0, "video", "h264", 0, 40000, False, disposable, config)
    assert encode_frame(frame)[2] & NON_REFERENCE
    frame.data = reference
    assert not encode_frame(frame)[2] & NON_REFERENCE
    audio = MediaFrame(1, "audio", "pcmu", 0, 20000, True, b"\x01\x00\x00\x00\x02", None)
    assert not encode_frame(audio)[2] & NON_REFERENCE
    assert not h264.non_reference(b"") and not h264.non_reference(b"\x00\x00\x00\x09")  # nothing, truncated
    assert not h265.non_reference(length_prefixed([bytes([0x4E, 0x01])]))  # an SEI alone is no picture
