import pytest
from hypothesis import given
from hypothesis import strategies as st

from opticlink.errors import RtpParseError
from opticlink.rtp.packet import RtpExtension, RtpPacket, build_rtp


def test_plain_packet_round_trips():
    packet = RtpPacket(96, 65535, 0xFFFFFFFF, 0x12345678, b"payload", marker=True)
    parsed = RtpPacket.parse(packet.serialize())
    assert parsed == packet


def test_csrc_extension_and_padding_round_trip():
    extension = RtpExtension(0xBEDE, b"\x10\xff\x00\x00")
    packet = RtpPacket(0, 7, 160, 1, b"\x01\x02\x03", csrc=(10, 20), extension=extension, padding=3)
    wire = packet.serialize()
    assert len(wire) == 12 + 8 + 8 + 3 + 3
    assert RtpPacket.parse(wire) == packet


def test_fast_builder_matches_the_dataclass():
    assert build_rtp(8, 1, 2, 3, b"x", marker=True) == RtpPacket(8, 1, 2, 3, b"x", marker=True).serialize()


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x80\x00", "shorter than the 12-byte header"),
        (b"\x40" + bytes(11), "version 1"),
        (b"\x8f" + bytes(11), "CSRC list"),
        (b"\x90" + bytes(11) + b"\x00\x00\x00\x05", "extension runs past"),
        (b"\xa0" + bytes(11) + b"\x00", "padding of 0"),
        (b"\xa0" + bytes(11) + b"\x09", "padding of 9"),
    ],
)
def test_malformed_packets_raise_our_parse_error(wire, reason):
    with pytest.raises(RtpParseError, match=reason.split()[0]):
        RtpPacket.parse(wire)


@given(st.binary(max_size=200))
def test_parser_raises_only_its_own_error_on_random_bytes(data):
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert 0 <= packet.payload_type < 128


@given(
    pt=st.integers(0, 127), seq=st.integers(0, 0xFFFF), ts=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64), marker=st.booleans(), csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    padding=st.integers(0, 255),
)
@pytest.mark.slow
def test_any_valid_packet_round_trips(pt, seq, ts, ssrc, payload, marker, csrc, padding):
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrc), padding=padding)
    assert RtpPacket.parse(packet.serialize()) == packet
