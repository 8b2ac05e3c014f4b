import pytest
from hypothesis import given
from hypothesis import strategies as st

from opticlink.errors import RtspParseError
from opticlink.rtsp.message import Headers, InterleavedFrame, RtspReader, RtspRequest, RtspResponse, interleaved

RESPONSE = (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n")


def test_response_with_body_then_interleaved_frames():
    stream = RESPONSE + interleaved(0, b"rtp") + interleaved(1, b"rtcp")
    messages = RtspReader().feed(stream)
    assert isinstance(messages[0], RtspResponse)
    assert messages[0].status == 200 and messages[0].cseq == 2 and messages[0].body == b"v=0\r\n"
    assert messages[1:] == [InterleavedFrame(0, b"rtp"), InterleavedFrame(1, b"rtcp")]


def test_byte_by_byte_feeding_gives_the_same_messages():
    keepalive = RtspRequest("GET_PARAMETER", "rtsp://a/b", Headers({"CSeq": "9"}))
    stream = interleaved(2, b"x" * 300) + RESPONSE + keepalive.serialize()
    reader = RtspReader()
    messages = []
    for byte in stream:
        messages += reader.feed(bytes([byte]))
    assert [type(m).__name__ for m in messages] == ["InterleavedFrame", "RtspResponse", "RtspRequest"]
    assert messages[2].method == "GET_PARAMETER" and messages[2].cseq == 9


def test_headers_are_case_insensitive_and_folded_lines_join():
    reader = RtspReader()
    (response,) = reader.feed(b"RTSP/1.0 401 Unauthorized\r\ncseq: 3\r\nWWW-Authenticate: Digest realm=\"x\",\r\n"
                              b" nonce=\"y\"\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n")
    assert response.headers.get("CSEQ") == "3"
    assert response.headers.get_all("www-authenticate") == ['Digest realm="x", nonce="y"', 'Basic realm="x"']


def test_stray_line_ends_between_messages_are_skipped():
    messages = RtspReader().feed(b"\r\n" + RESPONSE + b"\r\n\r\n" + RESPONSE)
    assert len(messages) == 2


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"RTSP/1.0 2000 OK\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nBad Header\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"DESCRIBE rtsp://a\r\n\r\n",
        b"X" * 70000,
    ],
)
def test_malformed_streams_raise_our_parse_error(wire):
    with pytest.raises(RtspParseError):
        RtspReader().feed(wire)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_reader_raises_only_its_own_error_on_random_chunks(chunks):
    reader = RtspReader()
    try:
        for chunk in chunks:
            reader.feed(chunk)
    except RtspParseError:
        pass


@given(method=st.sampled_from(["OPTIONS", "GET_PARAMETER", "SET_PARAMETER"]), cseq=st.integers(0, 10**6),
       body=st.binary(max_size=100))
def test_requests_round_trip(method, cseq, body):
    request = RtspRequest(method, "rtsp://h/p", Headers({"CSeq": str(cseq)}), body)
    (parsed,) = RtspReader().feed(request.serialize())
    assert (parsed.method, parsed.cseq, parsed.body) == (method, cseq, body)
