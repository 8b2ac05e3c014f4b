"""How many frames a stream may reorder, read from its H.264 or H.265 sequence parameter set.

A frame with B-frames before it in presentation order is sent ahead of them; the decode time of
each frame follows from the presentation times once the reorder depth is known (`sync/decode`).
The depth is the SPS's own `max_num_reorder_frames` (H.264 VUI bitstream restriction, ITU-T H.264
E.1.1) or `sps_max_num_reorder_pics` (H.265 7.3.2.2). Where an H.264 SPS does not say, it is 0 when
the stream cannot reorder (Baseline profile, or `pic_order_cnt_type` 2: output order is decode
order) and otherwise the largest the level allows (`MaxDpbFrames`, A.3.1), as the standard implies.
"""

from __future__ import annotations

from dataclasses import dataclass

from opticlink.rtp.formats.bits import BitReader

MAX_REORDER = 16  # the DPB never holds more frames (H.264 A.3.1, H.265 A.4.2)
MAX_SPS_BYTES = 4096  # real SPSs are tens of bytes; anything longer is not parsed
HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
# H.264 Table A-1: MaxDpbMbs per level_idc (9 is level 1b)
MAX_DPB_MBS = {9: 396, 10: 396, 11: 900, 12: 2376, 13: 2376, 20: 2376, 21: 4752, 22: 8100, 30: 8100,
               31: 18000, 32: 20480, 40: 32768, 41: 32768, 42: 34816, 50: 110400, 51: 184320, 52: 184320,
               60: 696320, 61: 696320, 62: 696320}


class SpsError(ValueError):
    """The SPS ended early or holds a value out of its range."""


@dataclass(frozen=True, slots=True)
class ReorderInfo:
    """Frames the stream may reorder, and whether the SPS said so itself (else it was inferred)."""

    depth: int
    declared: bool


def rbsp(nal: bytes) -> bytes:
    """A NAL unit's payload with emulation-prevention bytes (00 00 03) removed."""
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def h264_reorder(sps: bytes) -> ReorderInfo:
    """Reorder depth of an H.264 SPS NAL unit (with its one-byte NAL header)."""
    if not 4 <= len(sps) <= MAX_SPS_BYTES:
        raise SpsError(f"H.264 SPS of {len(sps)} bytes")
    b = BitReader(rbsp(sps[1:]), SpsError)
    profile, constraints, level = b.read(8), b.read(8), b.read(8)
    b.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            b.read(1)
        b.ue()
        b.ue()
        b.read(1)
        if b.read(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if b.read(1):
                    _scaling_list(b, 16 if i < 6 else 64)
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.read(1)
        b.se()
        b.se()
        cycle = b.ue()
        if cycle > 255:
            raise SpsError(f"num_ref_frames_in_pic_order_cnt_cycle {cycle} > 255")
        for _ in range(cycle):
            b.se()
    b.ue()  # max_num_ref_frames
    b.read(1)
    width_mbs, height_units = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.read(1)
    if not frame_mbs_only:
        b.read(1)
    b.read(1)
    if b.read(1):  # frame_cropping_flag
        for _ in range(4):
            b.ue()
    cannot_reorder = profile == 66 or poc_type == 2 or (profile in (44, 100, 110, 122, 244) and constraints & 0x10)
    inferred = 0 if cannot_reorder else _max_dpb_frames(level, constraints, width_mbs * height_units
                                                        * (2 - frame_mbs_only))
    if not b.read(1):  # vui_parameters_present_flag
        return ReorderInfo(inferred, False)
    try:
        depth = _h264_vui_reorder(b)
    except SpsError:
        return ReorderInfo(inferred, False)  # a truncated VUI still leaves the inferred depth
    return ReorderInfo(min(depth, MAX_REORDER), True) if depth is not None else ReorderInfo(inferred, False)


def _scaling_list(b: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + b.se()) % 256
        last = nxt or last


def _max_dpb_frames(level: int, constraints: int, frame_mbs: int) -> int:
    if level == 11 and constraints & 0x10:
        level = 9  # level 1b
    mbs = MAX_DPB_MBS.get(level, max(MAX_DPB_MBS.values()))
    return max(1, min(MAX_REORDER, mbs // max(1, frame_mbs)))


def _h264_vui_reorder(b: BitReader) -> int | None:
    if b.read(1) and b.read(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc Extended_SAR
        b.read(16)
        b.read(16)
    if b.read(1):
        b.read(1)
    if b.read(1):  # video_signal_type_present_flag
        b.read(4)
        if b.read(1):
            b.read(24)
    if b.read(1):
        b.ue()
        b.ue()
    if b.read(1):  # timing_info_present_flag
        b.read(32)
        b.read(32)
        b.read(1)
    nal_hrd = b.read(1)
    if nal_hrd:
        _hrd(b)
    vcl_hrd = b.read(1)
    if vcl_hrd:
        _hrd(b)
    if nal_hrd or vcl_hrd:
        b.read(1)
    b.read(1)  # pic_struct_present_flag
    if not b.read(1):  # bitstream_restriction_flag
        return None
    b.read(1)
    for _ in range(4):
        b.ue()
    return b.ue()  # max_num_reorder_frames


def _hrd(b: BitReader) -> None:
    count = b.ue() + 1
    if count > 32:
        raise SpsError(f"cpb_cnt {count} > 32")
    b.read(8)
    for _ in range(count):
        b.ue()
        b.ue()
        b.read(1)
    b.read(20)


def h265_reorder(sps: bytes) -> ReorderInfo:
    """Reorder depth of an H.265 SPS NAL unit (with its two-byte NAL header): the highest sub-layer's
    `sps_max_num_reorder_pics`."""
    if not 4 <= len(sps) <= MAX_SPS_BYTES:
        raise SpsError(f"H.265 SPS of {len(sps)} bytes")
    b = BitReader(rbsp(sps[2:]), SpsError)
    b.read(4)
    sub_layers = b.read(3)  # sps_max_sub_layers_minus1
    b.read(1)
    b.read(88)  # general profile space, tier, idc, compatibility and constraint flags
    b.read(8)  # general_level_idc
    present = [(b.read(1), b.read(1)) for _ in range(sub_layers)]
    if sub_layers:
        b.read(2 * (8 - sub_layers))
    for profile_present, level_present in present:
        if profile_present:
            b.read(88)
        if level_present:
            b.read(8)
    b.ue()  # sps_seq_parameter_set_id
    if b.ue() == 3:  # chroma_format_idc
        b.read(1)
    b.ue()
    b.ue()
    if b.read(1):  # conformance_window_flag
        for _ in range(4):
            b.ue()
    b.ue()
    b.ue()
    b.ue()  # log2_max_pic_order_cnt_lsb_minus4
    ordering_info = b.read(1)
    depth = 0
    for _ in range(0 if ordering_info else sub_layers, sub_layers + 1):
        b.ue()
        depth = b.ue()  # sps_max_num_reorder_pics; the last is the highest sub-layer's
        b.ue()
    return ReorderInfo(min(depth, MAX_REORDER), True)


def reorder_depth(codec: str, sps: bytes) -> ReorderInfo | None:
    """The reorder depth of `codec`'s ("h264", "h265") SPS, or None when it cannot be read."""
    if not sps:
        return None
    try:
        return h264_reorder(sps) if codec == "h264" else h265_reorder(sps)
    except SpsError:
        return None
