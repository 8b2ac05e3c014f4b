"""Depacketizers hold at most MAX_UNIT_BYTES (and MAX_UNIT_NALUS) of a unit; AAC at most
MAX_UNITS_PER_PACKET frames of a packet."""

import pytest

from opticlink.rtp.formats import RtpFormat, create_depacketizer
from opticlink.rtp.formats.aac import MAX_UNITS_PER_PACKET
from opticlink.rtp.formats.base import MAX_UNIT_BYTES, MAX_UNIT_NALUS
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import RtpPacket, build_rtp


def _item(payload: bytes, seq: int, ts: int = 1000, marker: bool = False, pt: int = 96) -> BufferedPacket:
    return BufferedPacket(RtpPacket.parse(build_rtp(pt, seq, ts, 1, payload, marker=marker)), seq, 0.0)


def _held(d) -> int:
    return len(d._fu or b"") + sum(len(n) for n in d._nalus)


@pytest.mark.parametrize(("encoding", "start", "middle"), [
    ("H264", b"\x7c\x85", b"\x7c\x05"),  # FU-A of an IDR, start then middle fragments
    ("H265", b"\x62\x01\x93", b"\x62\x01\x13"),  # FU of an IDR_W_RADL, start then middle fragments
])
def test_a_fragmented_unit_that_never_ends_is_dropped_at_the_cap(encoding, start, middle):
    d = create_depacketizer(RtpFormat(96, encoding, 90000))
    body = bytes(60_000)
    d.push(_item(start + body, 0))
    most = 0
    for seq in range(1, 2 * MAX_UNIT_BYTES // len(body)):
        assert d.push(_item(middle + body, seq)) == []
        most = max(most, _held(d))
    assert most <= MAX_UNIT_BYTES and _held(d) == 0
    assert "never ends" in d.problem
    d.push(_item(b"\x7c\x45" + b"\x01" if encoding == "H264" else b"\x62\x01\x53\x01", 9999, marker=True))
    units = d.push(_item(b"\x65\x01" if encoding == "H264" else b"\x26\x01\x01", 10_000, ts=4000, marker=True))
    assert len(units) == 1  # the next unit plays


def test_aac_packet_with_more_au_headers_than_the_cap_is_dropped_whole():
    fmt = RtpFormat(97, "MPEG4-GENERIC", 8000, fmtp={"sizelength": "1", "indexlength": "0",
                                                     "indexdeltalength": "0", "config": "1588"})
    d = create_depacketizer(fmt)
    header_bits = 0xFFF8
    payload = header_bits.to_bytes(2, "big") + b"\xff" * (header_bits // 8) + b"\x01" * 40_000
    assert d.push(_item(payload, 0, marker=True, pt=97)) == []
    assert d.dropped == 1 and f"more than {MAX_UNITS_PER_PACKET} AU headers" in d.problem
    few = (MAX_UNITS_PER_PACKET * 1).to_bytes(2, "big") + b"\xff" * (MAX_UNITS_PER_PACKET // 8) + b"\x01" * 64
    assert len(d.push(_item(few, 1, marker=True, pt=97))) == MAX_UNITS_PER_PACKET


def test_aac_lengths_that_never_advance_the_parse_cannot_loop():
    fmt = RtpFormat(97, "MPEG4-GENERIC", 8000, fmtp={"sizelength": "-3", "indexlength": "0",
                                                     "indexdeltalength": "0"})
    d = create_depacketizer(fmt)
    d.push(_item(b"\x00\x10\x00\x00", 0, marker=True, pt=97))  # returns: constant-size mode, one frame


def test_a_unit_of_ever_more_tiny_nal_units_is_dropped_at_the_nal_cap():
    d = create_depacketizer(RtpFormat(96, "H264", 90000))
    stap = b"\x18" + b"\x00\x01\x41" * 20_000  # a STAP-A of 20,000 one-byte NAL units
    most = 0
    for seq in range(5):
        d.push(_item(stap, seq))
        most = max(most, len(d._nalus))
    assert most <= MAX_UNIT_NALUS and f"more than {MAX_UNIT_NALUS} NAL units" in d.problem
