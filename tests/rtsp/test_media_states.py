"""Every media section a camera describes is accounted for: set up, or skipped with the reason;
a session-level direction applies to sections without their own (RFC 4566 section 6)."""

from opticlink.rtsp.client import (
    NO_PACKETS_AFTER,
    BackchannelUnavailable,
    ClientConfig,
    Failed,
    MediaState,
    Playing,
    RtspClientConnection,
)
from opticlink.rtsp.message import interleaved
from opticlink.rtsp.sdp import SessionDescription
from tests.rtsp.test_client import ScriptedCamera, events

HEAD = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=cam\nt=0 0\na=control:*\n"
VIDEO = "m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:trackID=0\n"
MPA = "m=audio 0 RTP/AVP 14\na=control:trackID=1\n"  # static payload type 14: MPEG audio, 90 kHz
PCMU = "m=audio 0 RTP/AVP 0\na=control:trackID=2\n"
APPLICATION = "m=application 0 RTP/AVP 107\na=rtpmap:107 vnd.onvif.metadata/90000\na=control:trackID=3\n"
TALK = "m=audio 0 RTP/AVP 0\na=control:trackID=4\na=sendonly\n"


def play(sdp, **config):
    client = RtspClientConnection(ClientConfig("rtsp://cam/live", **config))
    camera = ScriptedCamera(client, sdp=sdp)
    client.start(0.0)
    camera.exchange()
    return client, events(client)


def test_every_section_is_listed_with_its_state_unsupported_ones_included():
    client, got = play(HEAD + "a=recvonly\n" + VIDEO + MPA + PCMU + APPLICATION + TALK)
    assert any(isinstance(e, Playing) for e in got)
    assert client.media_states(1.0) == [
        MediaState(0, "video", "H264/90000", "recvonly", "playing", 0),
        MediaState(1, "audio", "MPA/90000", "recvonly", "unsupported codec MPA"),
        MediaState(2, "audio", "PCMU/8000", "recvonly", "playing", 1),
        MediaState(3, "application", "VND.ONVIF.METADATA/90000", "recvonly", "unsupported media application"),
        MediaState(4, "audio", "PCMU/8000", "sendonly", "backchannel, not requested"),
    ]


def test_a_playing_track_without_packets_for_a_few_seconds_says_so():
    client, _ = play(HEAD + VIDEO + PCMU)
    client.receive_data(interleaved(2, b"audio"), NO_PACKETS_AFTER + 1)
    states = {m.position: m.state for m in client.media_states(NO_PACKETS_AFTER + 1)}
    assert states == {0: "no packets", 1: "playing"}
    assert [m.state for m in client.media_states(1.0)] == ["playing", "playing"]  # just started: not yet
    client.teardown(10.0)
    assert [m.state for m in client.media_states(10.0)] == ["not playing", "not playing"]


def test_a_camera_offering_only_what_we_cannot_receive_fails_saying_why():
    client, got = play(HEAD + MPA + APPLICATION)
    failed = next(e for e in got if isinstance(e, Failed))
    assert str(failed.error) == ("DESCRIBE: no media we can receive (camera offers audio MPA/90000: unsupported "
                                 "codec MPA; application VND.ONVIF.METADATA/90000: unsupported media application)")
    assert [m.state for m in client.media_states(0.0)] == ["unsupported codec MPA", "unsupported media application"]


def test_session_level_direction_is_inherited_by_sections_without_their_own():
    sdp = SessionDescription.parse(HEAD + "a=sendonly\n" + PCMU + VIDEO + "a=recvonly\n")
    assert sdp.direction == "sendonly"
    assert [sdp.media_direction(m) for m in sdp.media] == ["sendonly", "recvonly"]
    assert [m.direction for m in sdp.media] == [None, "recvonly"]
    assert SessionDescription.parse(sdp.serialize()).direction == "sendonly"  # and written back


def test_session_level_sendonly_makes_an_undirected_audio_section_the_backchannel():
    client, got = play(HEAD + "a=sendonly\n" + PCMU + VIDEO + "a=recvonly\n", backchannel=True)
    playing = next(e for e in got if isinstance(e, Playing))
    assert [(t.kind, t.backchannel, t.direction) for t in playing.tracks] == [
        ("audio", True, "sendonly"), ("video", False, "recvonly")]
    assert not any(isinstance(e, BackchannelUnavailable) for e in got)
    client, got = play(HEAD + "a=sendonly\n" + PCMU + VIDEO + "a=recvonly\n")
    assert [m.state for m in client.media_states(0.5)] == ["backchannel, not requested", "playing"]


def test_session_level_recvonly_is_each_tracks_direction():
    _, got = play(HEAD + "a=recvonly\n" + VIDEO + PCMU)
    assert [t.direction for t in next(e for e in got if isinstance(e, Playing)).tracks] == ["recvonly", "recvonly"]


def test_session_level_inactive_leaves_nothing_to_play():
    _, got = play(HEAD + "a=inactive\n" + VIDEO + PCMU)
    failed = next(e for e in got if isinstance(e, Failed))
    assert "video H264/90000: inactive; audio PCMU/8000: inactive" in str(failed.error)
    _, got = play(HEAD + "a=inactive\n" + VIDEO + "a=recvonly\n" + PCMU)  # a section's own direction wins
    assert [t.kind for t in next(e for e in got if isinstance(e, Playing)).tracks] == ["video"]
