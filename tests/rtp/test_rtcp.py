import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opticlink.errors import RtcpParseError
from opticlink.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    SenderReport,
    SourceDescription,
    ntp_middle32,
    ntp_to_seconds,
    parse_rtcp,
    seconds_to_ntp,
    serialize_rtcp,
)


def test_compound_sr_sdes_bye_round_trips():
    block = ReportBlock(ssrc=9, fraction_lost=12, cumulative_lost=-3, highest_sequence=70000, jitter=55, lsr=1, dlsr=2)
    packets = [
        SenderReport(1, seconds_to_ntp(3_900_000_000.25), 123456, 10, 1000, [block]),
        SourceDescription([(1, {1: b"cam@host"})]),
        Goodbye([1, 2], "restart"),
    ]
    parsed = parse_rtcp(serialize_rtcp(packets))
    assert parsed == packets
    assert parsed[1].cname(1) == "cam@host"


def test_receiver_report_and_unknown_types_are_kept():
    packets = [ReceiverReport(5, [ReportBlock(ssrc=6)]), RtcpUnknown(205, 1, b"\x00" * 8)]
    assert parse_rtcp(serialize_rtcp(packets)) == packets


def test_ntp_conversions_are_exact_to_a_nanosecond():
    for seconds in (0.0, 1.5, 3_900_000_000.123456789):
        assert abs(ntp_to_seconds(seconds_to_ntp(seconds)) - seconds) < 1e-6
    ntp = seconds_to_ntp(3_900_000_000.5)
    assert ntp_middle32(ntp) == ((3_900_000_000 & 0xFFFF) << 16) | 0x8000


@pytest.mark.parametrize("wire", [b"\x80\xc8", b"\x80\xc8\x00\x06" + bytes(8), b"\x40\xc8\x00\x00",
                                  b"\x81\xc8\x00\x06" + bytes(24), b"\x81\xca\x00\x01" + bytes(4)])
def test_malformed_rtcp_raises_our_parse_error(wire):
    with pytest.raises(RtcpParseError):
        parse_rtcp(wire)


@given(st.binary(max_size=300))
def test_parser_raises_only_its_own_error_on_random_bytes(data):
    with contextlib.suppress(RtcpParseError):
        parse_rtcp(data)
