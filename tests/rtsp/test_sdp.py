import contextlib

from hypothesis import given
from hypothesis import strategies as st

from opticlink.errors import SdpParseError
from opticlink.rtp.formats.base import RtpFormat
from opticlink.rtsp.sdp import MediaDescription, SessionDescription, resolve_control

GSTREAMER_ONVIF = """v=0
o=- 3484173531960700608 1 IN IP4 127.0.0.1
s=Session streamed with GStreamer
t=0 0
a=control:*
a=range:npt=now-
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAFdkBQfsBagwMDUoAAAMAAgAAAwBlHixckA==,aMuMsg==
a=framerate:25
a=control:stream=0
a=recvonly
m=audio 0 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=control:stream=1
a=recvonly
m=audio 0 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=control:stream=2
a=sendonly
"""


def test_onvif_description_with_backchannel():
    sdp = SessionDescription.parse(GSTREAMER_ONVIF)
    assert [m.kind for m in sdp.media] == ["video", "audio", "audio"]
    assert [m.direction for m in sdp.media] == ["recvonly", "recvonly", "sendonly"]
    video = sdp.media[0].format
    assert (video.encoding, video.clock_rate, video.fmtp["packetization-mode"]) == ("H264", 90000, "1")
    assert sdp.media[1].format == RtpFormat(0, "PCMU", 8000)
    assert sdp.control == "*"


def test_static_payload_types_without_rtpmap_and_channels():
    sdp = SessionDescription.parse("v=0\nm=audio 0 RTP/AVP 8 97\na=rtpmap:97 L16/16000/2\n")
    assert [f.encoding for f in sdp.media[0].formats] == ["PCMA", "L16"]
    assert sdp.media[0].formats[1].channels == 2


def test_session_level_direction_applies_to_media_without_their_own():
    sdp = SessionDescription.parse("v=0\na=sendonly\nm=audio 0 RTP/AVP 0\nm=video 0 RTP/AVP 96\na=recvonly\n")
    assert [sdp.media_direction(m) for m in sdp.media] == ["sendonly", "recvonly"]


def test_control_urls_resolve_like_cameras_expect():
    base = "rtsp://cam:554/Streaming/Channels/101"
    assert resolve_control(base, "trackID=1") == base + "/trackID=1"
    assert resolve_control(base + "/", "trackID=1") == base + "/trackID=1"
    assert resolve_control(base, "rtsp://other/x") == "rtsp://other/x"
    assert resolve_control(base, "*") == base
    assert resolve_control(base, None) == base
    assert resolve_control("rtsp://h/live?ch=1", "?track=2") == "rtsp://h/live?ch=1?track=2"


def test_serialize_then_parse_round_trips():
    sdp = SessionDescription(control="*", media=[
        MediaDescription("video", formats=[RtpFormat(96, "H264", 90000, 1, {"packetization-mode": "1"})],
                         control="trackID=0", direction="recvonly"),
        MediaDescription("audio", formats=[RtpFormat(0, "PCMU", 8000), RtpFormat(8, "PCMA", 8000)],
                         control="trackID=1", direction="sendonly")])
    again = SessionDescription.parse(sdp.serialize())
    assert [(m.control, m.direction, [f.rtpmap for f in m.formats]) for m in again.media] == [
        ("trackID=0", "recvonly", ["H264/90000"]), ("trackID=1", "sendonly", ["PCMU/8000", "PCMA/8000"])]


@given(st.text(max_size=400))
def test_parser_raises_only_its_own_error_on_random_text(text):
    with contextlib.suppress(SdpParseError):
        SessionDescription.parse(text)


@given(st.lists(st.sampled_from(["v=0", "m=audio x RTP/AVP 0", "m=video 0", "a=rtpmap:96 H264/abc", "a=fmtp:x",
                                 "a=rtpmap:0 PCMU/8000/99", "m=audio 0 RTP/AVP 0 300", "a=control:", "c=IN",
                                 "a=sendonly", "garbage"]), max_size=15))
def test_parser_raises_only_its_own_error_on_mangled_descriptions(lines):
    with contextlib.suppress(SdpParseError):
        SessionDescription.parse("\n".join(lines))
