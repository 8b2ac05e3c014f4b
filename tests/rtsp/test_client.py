"""The RTSP client session as a specification: a scripted camera answers, no sockets, no clock."""

from hypothesis import given, settings
from hypothesis import strategies as st

from opticlink.rtsp.auth import DigestVerifier
from opticlink.rtsp.client import (
    BACKCHANNEL_REQUIRE,
    BackchannelUnavailable,
    ClientConfig,
    Closed,
    Described,
    Exchanged,
    Failed,
    Playing,
    Redirected,
    RtcpReceived,
    RtpReceived,
    RtspClientConnection,
    State,
    UdpPortsRequired,
)
from opticlink.rtsp.headers import Transport
from opticlink.rtsp.message import Headers, RtspReader, RtspRequest, RtspResponse, interleaved

SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=cam
t=0 0
a=control:*
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=control:trackID=0
a=recvonly
m=audio 0 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=control:trackID=1
a=recvonly
"""
BACKCHANNEL = "m=audio 0 RTP/AVP 8 0\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\na=control:trackID=2\na=sendonly\n"


class ScriptedCamera:
    """Answers a client's requests; `handlers` may override any method's answer."""

    def __init__(self, client, *, sdp=SDP, timeout=60, handlers=None):
        self.client = client
        self.reader = RtspReader()
        self.sdp = sdp
        self.timeout = timeout
        self.handlers = handlers or {}
        self.requests: list[RtspRequest] = []

    def exchange(self, now=0.0, rounds=20):
        for _ in range(rounds):
            data = self.client.data_to_send()
            if not data:
                return
            for message in self.reader.feed(data):
                if isinstance(message, RtspRequest):
                    self.requests.append(message)
                    response = self.answer(message)
                    if response is not None:
                        response.headers["CSeq"] = str(message.cseq)
                        self.client.receive_data(response.serialize(), now)

    def answer(self, request):
        handler = self.handlers.get(request.method)
        if handler is not None:
            response = handler(request)
            if response is not False:
                return response
        h = Headers()
        if request.method == "OPTIONS":
            h.add("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
        elif request.method == "DESCRIBE":
            body = self.sdp + (BACKCHANNEL if BACKCHANNEL_REQUIRE in (request.headers.get("Require") or "") else "")
            h.add("Content-Base", "rtsp://cam/live/")
            return RtspResponse(200, "OK", h, body.encode())
        elif request.method == "SETUP":
            offered = Transport.parse(request.headers["Transport"])
            if offered.tcp:
                reply = Transport("RTP/AVP/TCP", interleaved=offered.interleaved, ssrc=0x1234)
            else:
                reply = Transport("RTP/AVP", client_port=offered.client_port, server_port=(7000, 7001))
            h.add("Session", f"SESS1;timeout={self.timeout}")
            h.add("Transport", str(reply))
        elif request.method in ("PLAY", "GET_PARAMETER", "TEARDOWN"):
            h.add("Session", "SESS1")
            if request.method == "PLAY":
                h.add("RTP-Info", "url=rtsp://cam/live/trackID=0;seq=10;rtptime=1000,"
                                  "url=rtsp://cam/live/trackID=1;seq=20;rtptime=2000")
        return RtspResponse(200, "OK", h)

    def methods(self):
        return [r.method for r in self.requests]


def events(client):
    """What happened, without the log of messages exchanged (`Exchanged`)."""
    out = []
    while (event := client.next_event()) is not None:
        if not isinstance(event, Exchanged):
            out.append(event)
    return out


def start(config, **camera_options):
    client = RtspClientConnection(config)
    camera = ScriptedCamera(client, **camera_options)
    client.start(0.0)
    camera.exchange()
    return client, camera


def test_plays_every_live_track_over_tcp_and_delivers_interleaved_packets():
    client, camera = start(ClientConfig("rtsp://cam/live"))
    assert camera.methods() == ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "PLAY"]
    assert [r.uri for r in camera.requests[2:]] == ["rtsp://cam/live/trackID=0", "rtsp://cam/live/trackID=1",
                                                   "rtsp://cam/live/"]
    assert camera.requests[3].headers["Session"] == "SESS1"
    got = events(client)
    playing = next(e for e in got if isinstance(e, Playing))
    assert [(t.kind, t.format.encoding, t.channels, t.rtp_info.rtptime) for t in playing.tracks] == [
        ("video", "H264", (0, 1), 1000), ("audio", "PCMU", (2, 3), 2000)]
    client.receive_data(interleaved(2, b"rtp-audio") + interleaved(1, b"rtcp-video") + interleaved(9, b"?"), 1.0)
    assert events(client) == [RtpReceived(1, b"rtp-audio", 1.0), RtcpReceived(0, b"rtcp-video", 1.0)]


def test_credentials_from_the_url_answer_digest_and_never_appear_in_request_uris():
    verifier = DigestVerifier("admin", "s3cret")

    def guard(request):
        if verifier.verify(request.method, request.headers.get("Authorization")):
            return False
        h = Headers([("WWW-Authenticate", c) for c in verifier.challenges()])
        return RtspResponse(401, "Unauthorized", h)

    handlers = {m: guard for m in ("OPTIONS", "DESCRIBE", "SETUP", "PLAY")}
    client, camera = start(ClientConfig("rtsp://admin:s3cret@cam/live"), handlers=handlers)
    assert client.state == State.PLAYING
    assert all("admin" not in r.uri for r in camera.requests)
    assert camera.methods()[:2] == ["OPTIONS", "OPTIONS"]  # one challenge, then every request authorized
    assert "algorithm=SHA-256" in camera.requests[-1].headers["Authorization"]


def test_wrong_credentials_fail_with_the_user_named():
    verifier = DigestVerifier("admin", "right")
    challenge = Headers([("WWW-Authenticate", verifier.challenges()[1])])
    handlers = {"OPTIONS": lambda r: RtspResponse(401, "Unauthorized", challenge)}
    client, _ = start(ClientConfig("rtsp://cam/live", username="admin", password="wrong"), handlers=handlers)
    failure = next(e for e in events(client) if isinstance(e, Failed))
    assert failure.error.status == 401 and "rejected the credentials for user 'admin'" in str(failure.error)


def test_no_credentials_for_a_protected_camera_says_so():
    challenge = Headers({"WWW-Authenticate": 'Basic realm="c"'})
    handlers = {"OPTIONS": lambda r: RtspResponse(401, "Unauthorized", challenge)}
    client, _ = start(ClientConfig("rtsp://cam/live"), handlers=handlers)
    failure = next(e for e in events(client) if isinstance(e, Failed))
    assert "no credentials were given" in str(failure.error) and "Basic realm='c'" in str(failure.error)


def test_backchannel_is_required_on_describe_setup_and_play_and_set_up():
    client, camera = start(ClientConfig("rtsp://cam/live", backchannel=True))
    assert camera.methods() == ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "SETUP", "PLAY"]
    assert all(r.headers.get("Require") == BACKCHANNEL_REQUIRE for r in camera.requests[1:])
    playing = next(e for e in events(client) if isinstance(e, Playing))
    back = playing.tracks[2]
    assert back.backchannel and back.format.encoding == "PCMU" and back.channels == (4, 5)
    client.send_rtp(2, b"talk")
    assert client.data_to_send() == interleaved(4, b"talk")


def test_describe_only_asks_what_the_camera_offers_and_sets_nothing_up():
    client, camera = start(ClientConfig("rtsp://cam/live", backchannel=True, only_backchannel=True,
                                        describe_only=True))
    assert camera.methods() == ["OPTIONS", "DESCRIBE"]
    got = events(client)
    described = next(e for e in got if isinstance(e, Described))
    assert [t.backchannel for t in described.tracks] == [True] and isinstance(got[-1], Closed)
    assert client.state == State.CLOSED and client.data_to_send() == b""

    client, camera = start(ClientConfig("rtsp://cam/live", backchannel=True, only_backchannel=True,
                                        describe_only=True), handlers={"DESCRIBE": lambda r: RtspResponse(
                                            200, "OK", Headers({"Content-Base": "rtsp://cam/live/"}), SDP.encode())})
    failed = next(e for e in events(client) if isinstance(e, Failed))  # a camera without a speaker says so
    assert failed.error.step == "DESCRIBE" and "backchannel" in str(failed.error)
    assert camera.methods() == ["OPTIONS", "DESCRIBE"]


def test_camera_answering_551_is_asked_again_without_the_backchannel():
    def describe(request):
        if request.headers.get("Require"):
            return RtspResponse(551, "Option not supported", Headers({"Unsupported": BACKCHANNEL_REQUIRE}))
        return False

    client, camera = start(ClientConfig("rtsp://cam/live", backchannel=True), handlers={"DESCRIBE": describe})
    assert camera.methods() == ["OPTIONS", "DESCRIBE", "DESCRIBE", "SETUP", "SETUP", "PLAY"]
    assert camera.requests[2].headers.get("Require") is None
    got = events(client)
    assert any(isinstance(e, BackchannelUnavailable) and "551" in e.reason for e in got)
    assert len(next(e for e in got if isinstance(e, Playing)).tracks) == 2


def test_failed_backchannel_setup_tears_down_and_plays_live_tracks_only():
    def setup(request):
        if request.uri.endswith("trackID=2"):
            return RtspResponse(500, "Internal Server Error")
        return False

    client, camera = start(ClientConfig("rtsp://cam/live", backchannel=True), handlers={"SETUP": setup})
    assert camera.methods() == ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "SETUP", "TEARDOWN", "DESCRIBE", "SETUP",
                                "SETUP", "PLAY"]
    assert client.state == State.PLAYING and len(client.tracks) == 2


def test_redirect_hands_the_new_location_to_the_adapter():
    handlers = {"DESCRIBE": lambda r: RtspResponse(302, "Found", Headers({"Location": "rtsp://other:8554/x"}))}
    client, _ = start(ClientConfig("rtsp://cam/live"), handlers=handlers)
    assert events(client)[-2:] == [Redirected("rtsp://other:8554/x"), Closed()]


def test_keepalive_runs_at_half_the_session_timeout_with_get_parameter():
    client, camera = start(ClientConfig("rtsp://cam/live"), timeout=20)
    client.receive_data(interleaved(0, b"x"), 9.0)
    assert client.get_timer() == 10.0
    client.handle_timer(10.0)
    camera.exchange(10.0)
    assert camera.requests[-1].method == "GET_PARAMETER" and camera.requests[-1].headers["Session"] == "SESS1"


def test_a_request_without_answer_fails_after_the_timeout():
    client, _ = start(ClientConfig("rtsp://cam/live", request_timeout=5), handlers={"DESCRIBE": lambda r: None})
    assert client.get_timer() == 5.0
    client.handle_timer(5.0)
    failure = next(e for e in events(client) if isinstance(e, Failed))
    assert failure.error.step == "DESCRIBE" and "no answer in 5 s" in str(failure.error)


def test_a_camera_that_stops_sending_media_is_given_up_after_the_stall_timeout():
    client, _ = start(ClientConfig("rtsp://cam/live", stall_timeout=3))
    client.receive_data(interleaved(0, b"x"), 1.0)
    client.handle_timer(4.0)
    failure = next(e for e in events(client) if isinstance(e, Failed))
    assert "no media from the camera for 3 s" in str(failure.error)


def test_requests_from_the_camera_are_answered():
    client, _ = start(ClientConfig("rtsp://cam/live"))
    client.receive_data(RtspRequest("OPTIONS", "*", Headers({"CSeq": "77"})).serialize(), 2.0)
    (answer,) = RtspReader().feed(client.data_to_send())
    assert answer.status == 200 and answer.cseq == 77


def test_garbage_from_the_camera_fails_the_session_cleanly():
    client, _ = start(ClientConfig("rtsp://cam/live"))
    events(client)
    client.receive_data(b"RTSP/1.0 xyz\r\n\r\n", 2.0)
    got = events(client)
    assert isinstance(got[0], Failed) and "malformed data from the camera" in str(got[0].error)
    assert got[-1] == Closed() and client.state == State.CLOSED


def test_udp_asks_for_ports_and_sends_rtcp_to_the_server_ports():
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", transport="udp"))
    camera = ScriptedCamera(client)
    client.start(0.0)
    camera.exchange()
    required = next(e for e in events(client) if isinstance(e, UdpPortsRequired))
    client.provide_udp_ports({t.index: (5000 + 2 * t.index, 5001 + 2 * t.index) for t in required.tracks})
    camera.exchange()
    assert Transport.parse(camera.requests[2].headers["Transport"]).client_port == (5000, 5001)
    assert client.tracks[1].server_ports == (7000, 7001)
    client.send_rtcp(1, b"rr")
    assert client.datagrams_to_send() == [(1, True, b"rr")]
    client.receive_datagram(0, False, b"rtp", 3.0)
    assert events(client)[-1] == RtpReceived(0, b"rtp", 3.0)


def test_teardown_closes_after_the_answer():
    client, camera = start(ClientConfig("rtsp://cam/live"))
    events(client)
    client.teardown(5.0)
    camera.exchange(5.0)
    assert camera.methods()[-1] == "TEARDOWN" and events(client) == [Closed()]


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=60), max_size=10))
def test_any_bytes_from_a_camera_end_in_events_never_exceptions(chunks):
    client, _ = start(ClientConfig("rtsp://cam/live"))
    for i, chunk in enumerate(chunks):
        client.receive_data(chunk, float(i))
    for event in events(client):
        assert isinstance(event, (Described, Playing, RtpReceived, RtcpReceived, Failed, Closed, Exchanged))


def test_every_control_message_is_told_as_text_with_the_authorization_masked():
    def describe(request):  # Digest, as cameras ask
        if "Authorization" in request.headers:
            return False
        return RtspResponse(401, "Unauthorized", Headers([("WWW-Authenticate", 'Digest realm="cam", nonce="abc"')]))

    client, _ = start(ClientConfig("rtsp://cam/live", username="admin", password="hunter22"),
                      handlers={"DESCRIBE": describe})
    exchanged = []
    while (event := client.next_event()) is not None:
        if isinstance(event, Exchanged):
            exchanged.append(event)
    sent = [e.text for e in exchanged if e.sent]
    assert sent[0].startswith("OPTIONS ")
    assert any(t.startswith("PLAY ") for t in sent) and any("Authorization: REDACTED" in t for t in sent)
    assert not any("hunter22" in e.text for e in exchanged)
    assert any(not e.sent and "m=video" in e.text for e in exchanged)  # the description, as the camera sent it
