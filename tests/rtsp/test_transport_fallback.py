"""Transport choice as a specification: auto falls back from TCP to UDP (and an order the other way),
and UDP takes datagrams only from the camera. A scripted camera answers; no sockets, no clock."""

import pytest

from opticlink.rtsp.client import (
    ClientConfig,
    Closed,
    Failed,
    Playing,
    RtpReceived,
    RtspClientConnection,
    State,
    TransportFallback,
    UdpPortsRequired,
    transport_order,
)
from opticlink.rtsp.headers import Transport
from opticlink.rtsp.message import Headers, RtspResponse, interleaved
from tests.rtsp.test_client import ScriptedCamera, events

UNSUPPORTED = RtspResponse(461, "Unsupported Transport")


def refuse(lower):
    """A SETUP handler refusing one lower transport with 461."""
    def setup(request):
        offered = Transport.parse(request.headers["Transport"])
        return RtspResponse(461, "Unsupported Transport") if ("tcp" if offered.tcp else "udp") == lower else False
    return setup


def give_ports(client, got):
    required = next((e for e in got if isinstance(e, UdpPortsRequired)), None)
    assert required is not None
    client.provide_udp_ports({t.index: (5000 + 2 * t.index, 5001 + 2 * t.index) for t in required.tracks})


def setups(camera):
    return [("tcp" if Transport.parse(r.headers["Transport"]).tcp else "udp") for r in camera.requests
            if r.method == "SETUP"]


def test_transport_orders():
    assert transport_order("auto") == ("tcp", "udp") and transport_order("udp, tcp") == ("udp", "tcp")
    assert ClientConfig("rtsp://cam/live").transport == "auto"
    with pytest.raises(ValueError, match="transport must be one of"):
        RtspClientConnection(ClientConfig("rtsp://cam/live", transport="quic"))


def test_auto_setup_refused_with_461_plays_over_udp_without_any_option():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live"))
    camera = ScriptedCamera(client, handlers={"SETUP": refuse("tcp")})
    client.start(0.0)
    camera.exchange()
    got = events(client)
    fallback = next(e for e in got if isinstance(e, TransportFallback))
    assert (fallback.failed, fallback.next, fallback.reconnect) == ("tcp", "udp", False)
    assert "461 Unsupported Transport" in fallback.reason
    give_ports(client, got)
    camera.exchange()
    playing = next(e for e in events(client) if isinstance(e, Playing))
    assert playing.transport == "udp" and client.transport == "udp"
    assert [t.lower_transport for t in playing.tracks] == ["udp", "udp"]
    assert [t.server_ports for t in playing.tracks] == [(7000, 7001), (7000, 7001)]
    assert camera.methods() == ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "SETUP", "PLAY"]  # no TEARDOWN: no session
    assert setups(camera) == ["tcp", "udp", "udp"]
    assert client.fallbacks == ["TCP: SETUP of video H264/90000 (live) answered 461 Unsupported Transport"]


def test_udp_first_order_refused_with_461_plays_over_tcp():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", transport="udp,tcp"))
    camera = ScriptedCamera(client, handlers={"SETUP": refuse("udp")})
    client.start(0.0)
    camera.exchange()
    give_ports(client, events(client))
    camera.exchange()
    got = events(client)
    assert any(isinstance(e, TransportFallback) and e.failed == "udp" and e.next == "tcp" for e in got)
    playing = next(e for e in got if isinstance(e, Playing))
    assert playing.transport == "tcp" and [t.channels for t in playing.tracks] == [(0, 1), (2, 3)]
    assert setups(camera) == ["udp", "tcp", "tcp"]


def test_a_half_made_session_is_torn_down_before_every_track_is_set_up_again():
    def setup(request):  # the second track's SETUP over TCP fails with 400
        offered = Transport.parse(request.headers["Transport"])
        if offered.tcp and request.uri.endswith("trackID=1"):
            return RtspResponse(400, "Bad Request")
        return False

    client = RtspClientConnection(ClientConfig("rtsp://cam/live"))
    camera = ScriptedCamera(client, handlers={"SETUP": setup})
    client.start(0.0)
    camera.exchange()
    give_ports(client, events(client))
    camera.exchange()
    assert camera.methods() == ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "TEARDOWN", "SETUP", "SETUP", "PLAY"]
    teardown, resetup = camera.requests[4], camera.requests[5]
    assert teardown.headers["Session"] == "SESS1" and "Session" not in resetup.headers  # a fresh session
    assert client.state == State.PLAYING and client.transport == "udp"


def test_an_explicit_transport_never_falls_back():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", transport="tcp"))
    camera = ScriptedCamera(client, handlers={"SETUP": refuse("tcp")})
    client.start(0.0)
    camera.exchange()
    got = events(client)
    assert not any(isinstance(e, TransportFallback) for e in got)
    assert isinstance(got[-2], Failed) and got[-2].error.status == 461 and got[-1] == Closed()


def test_when_every_transport_fails_the_error_says_what_each_did():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live"))
    camera = ScriptedCamera(client, handlers={"SETUP": lambda r: RtspResponse(404, "Not Found")})
    client.start(0.0)
    camera.exchange()
    give_ports(client, events(client))
    camera.exchange()
    failed = next(e for e in events(client) if isinstance(e, Failed))
    assert str(failed.error) == ("SETUP: video H264/90000 (live) at rtsp://cam/live/trackID=0: camera answered 404 "
                                 "Not Found (after TCP: SETUP of video H264/90000 (live) answered 404 Not Found)")


def test_camera_closing_the_connection_during_setup_falls_back_on_a_new_connection():
    client = RtspClientConnection(ClientConfig("rtsp://admin:pw@cam/live"))
    camera = ScriptedCamera(client, handlers={"SETUP": lambda r: None})  # no answer: the camera hangs up
    client.start(0.0)
    camera.exchange()
    events(client)
    client.connection_lost(1.0, "reset by peer")
    got = events(client)
    assert got[0] == TransportFallback("tcp", "udp", "the camera closed the connection during SETUP: reset by peer",
                                       reconnect=True)
    assert got[-1] == Closed() and not any(isinstance(e, Failed) for e in got)
    successor = client.successor()
    assert successor.config.transport == "udp" and successor.credentials.username == "admin"
    assert successor.fallbacks == client.fallbacks and len(successor.fallbacks) == 1
    camera = ScriptedCamera(successor)
    successor.start(2.0)
    camera.exchange()
    give_ports(successor, events(successor))
    camera.exchange()
    assert successor.state == State.PLAYING and setups(camera) == ["udp", "udp"]


def test_connection_closed_after_a_fallback_tries_the_new_transport_on_a_new_connection():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live"))
    camera = ScriptedCamera(client, handlers={"SETUP": refuse("tcp")})
    client.start(0.0)
    camera.exchange()
    events(client)
    client.connection_lost(1.0)  # a camera that hangs up after its 461, before our UDP SETUP was answered
    fallback = next(e for e in events(client) if isinstance(e, TransportFallback))
    assert fallback.reconnect and fallback.next == "udp"
    assert client.successor().config.transport == "udp"


def test_setup_without_answer_falls_back_on_a_new_connection():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", request_timeout=5))
    camera = ScriptedCamera(client, handlers={"SETUP": lambda r: None})
    client.start(0.0)
    camera.exchange()
    events(client)
    client.handle_timer(5.0)
    got = events(client)
    assert got[0] == TransportFallback("tcp", "udp", "SETUP got no answer in 5 s", reconnect=True)
    assert got[-1] == Closed()


def test_playing_without_a_single_packet_falls_back_then_a_stall_is_a_failure():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", stall_timeout=4))
    camera = ScriptedCamera(client)
    client.start(0.0)
    camera.exchange()
    events(client)
    client.handle_timer(4.0)  # TCP played, nothing came: TEARDOWN and set up again over UDP
    camera.exchange(4.0)
    got = events(client)
    assert got[0] == TransportFallback("tcp", "udp", "PLAY succeeded but no media from the camera for 4 s")
    assert camera.methods()[-1] == "TEARDOWN"
    give_ports(client, got)
    camera.exchange(4.0)
    assert client.state == State.PLAYING and camera.methods()[-3:] == ["SETUP", "SETUP", "PLAY"]
    client.receive_datagram(0, False, b"rtp", 5.0, ("cam", 7000))
    client.handle_timer(9.0)  # media flowed, then stopped: that is a failure, not a fallback
    failed = next(e for e in events(client) if isinstance(e, Failed))
    assert str(failed.error) == "PLAY: no media from the camera for 4 s"


def test_a_tcp_fallback_after_udp_plays_interleaved_media():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", transport="udp,tcp"))
    camera = ScriptedCamera(client, handlers={"SETUP": refuse("udp")})
    client.start(0.0)
    camera.exchange()
    give_ports(client, events(client))
    camera.exchange()
    events(client)
    client.receive_data(interleaved(2, b"audio"), 1.0)
    assert events(client) == [RtpReceived(1, b"audio", 1.0)]


def udp_client(handlers=None, **config):
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", transport="udp", **config))
    camera = ScriptedCamera(client, handlers=handlers)
    client.start(0.0, peer_host="192.0.2.10")
    camera.exchange()
    give_ports(client, events(client))
    camera.exchange()
    events(client)
    return client


def test_udp_takes_datagrams_only_from_the_cameras_address_and_server_ports():
    client = udp_client()
    client.receive_datagram(0, False, b"ok", 1.0, ("192.0.2.10", 7000))
    client.receive_datagram(0, True, b"rtcp", 1.0, ("192.0.2.10", 7001))
    client.receive_datagram(0, False, b"mapped", 1.0, ("::ffff:192.0.2.10", 7000))
    client.receive_datagram(0, False, b"port", 1.0, ("192.0.2.10", 40000))  # a foreign port
    client.receive_datagram(0, True, b"swapped", 1.0, ("192.0.2.10", 7000))  # RTCP from the RTP port
    client.receive_datagram(0, False, b"host", 1.0, ("198.51.100.7", 7000))  # a foreign host
    assert [e.data for e in events(client)] == [b"ok", b"rtcp", b"mapped"]
    assert client.datagrams_dropped == 3
    assert client.tracks[0].last_packet == 1.0


def test_udp_any_port_still_checks_the_address():
    client = udp_client(udp_any_port=True)
    client.receive_datagram(0, False, b"port", 1.0, ("192.0.2.10", 40000))
    client.receive_datagram(0, False, b"host", 1.0, ("198.51.100.7", 7000))
    assert [e.data for e in events(client)] == [b"port"] and client.datagrams_dropped == 1


def test_a_source_in_the_setup_reply_names_the_media_address():
    def setup(request):
        offered = Transport.parse(request.headers["Transport"])
        reply = Transport("RTP/AVP", client_port=offered.client_port, server_port=(7000, 7001),
                          source="198.51.100.7")
        return RtspResponse(200, "OK", Headers([("Session", "SESS1"), ("Transport", str(reply))]))

    client = udp_client({"SETUP": setup})
    client.receive_datagram(0, False, b"media", 1.0, ("198.51.100.7", 7000))
    client.receive_datagram(0, False, b"peer", 1.0, ("192.0.2.10", 7000))
    assert [e.data for e in events(client)] == [b"media"] and client.datagrams_dropped == 1


def test_a_461_keeps_the_backchannel_and_a_talk_session_falls_back_too():
    for only in (False, True):
        client = RtspClientConnection(ClientConfig("rtsp://cam/live", backchannel=True, only_backchannel=only))
        camera = ScriptedCamera(client, handlers={"SETUP": refuse("tcp")})
        client.start(0.0)
        camera.exchange()
        give_ports(client, events(client))
        camera.exchange()
        playing = next(e for e in events(client) if isinstance(e, Playing))
        assert playing.transport == "udp" and playing.tracks[-1].backchannel
        assert len(playing.tracks) == (1 if only else 3)
