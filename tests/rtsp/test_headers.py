import datetime as dt

import pytest

from opticlink.errors import RtspParseError
from opticlink.rtsp.headers import SessionHeader, Transport, parse_range, parse_rtp_info, parse_transports


def test_transport_tcp_interleaved_round_trips():
    t = Transport.parse("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=0A0B0C0D;mode=\"PLAY\"")
    assert t.tcp and t.interleaved == (2, 3) and t.ssrc == 0x0A0B0C0D and t.mode == "PLAY"
    assert Transport.parse(str(t)) == t


def test_transport_udp_ports_and_single_port_form():
    t = Transport.parse("RTP/AVP;unicast;client_port=5000;server_port=6000-6001;source=10.0.0.2")
    assert not t.tcp and t.client_port == (5000, 5001) and t.server_port == (6000, 6001) and t.source == "10.0.0.2"
    assert len(parse_transports("RTP/AVP/TCP;interleaved=0-1, RTP/AVP;client_port=4-5")) == 2


@pytest.mark.parametrize("value", ["", "HTTP/1.1", "RTP/AVP;client_port=x-y", "RTP/AVP;client_port=70000-70001"])
def test_bad_transports_raise_our_parse_error(value):
    with pytest.raises(RtspParseError):
        Transport.parse(value)


def test_session_timeout_defaults_to_60_and_reads_the_parameter():
    assert SessionHeader.parse("ABC123") == SessionHeader("ABC123", 60.0)
    assert SessionHeader.parse("ABC123;timeout=20").timeout == 20.0
    assert SessionHeader.parse("ABC123; timeout=0").timeout == 60.0


def test_rtp_info_entries_and_malformed_fields():
    infos = parse_rtp_info("url=rtsp://h/s/trackID=0;seq=1234;rtptime=4294967295, url=trackID=1;seq=x;rtptime=77")
    assert [(i.url, i.seq, i.rtptime) for i in infos] == [("rtsp://h/s/trackID=0", 1234, 4294967295),
                                                          ("trackID=1", None, 77)]


def test_range_npt_and_absolute_clock():
    assert parse_range("npt=0.000-").npt_start == 0.0
    assert parse_range("npt=now-").npt_start is None
    r = parse_range("clock=20261125T083000.250Z-")
    assert r.clock_start == dt.datetime(2026, 11, 25, 8, 30, 0, 250000, tzinfo=dt.UTC).timestamp()
