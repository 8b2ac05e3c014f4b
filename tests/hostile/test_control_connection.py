"""A control connection that floods us: a header that never ends, a huge body, 10,000 media."""

import asyncio

from opticlink.rtsp.aio import RtspClient
from opticlink.rtsp.client import MAX_MEDIA_SECTIONS, MAX_TRACKS, ClientConfig
from opticlink.rtsp.message import MAX_BODY_BYTES, MAX_HEADER_BYTES
from tests.hostile.harness import H264_SDP, HostileCamera, assert_unharmed, bench, report


def buffered(b) -> float:
    """Bytes the bad camera's RTSP reader holds now."""
    client = b.bad.session.client
    return len(client.connection._reader._buf) if client is not None else 0


async def test_endless_header_fails_at_the_header_cap(simulator):
    async def behaviour(peer):
        await peer.request()
        peer.writer.write(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n")
        while True:
            peer.writer.write(b"X-Filler: " + b"a" * 4000 + b"\r\n")
            await peer.writer.drain()
            await asyncio.sleep(0.001)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            seen = await b.watch(2.0, lambda: buffered(b), until=lambda status: bool(status["error"]))
    finally:
        await camera.close()
    report("endless header", seen, f"a head holds at most {MAX_HEADER_BYTES >> 10} KiB (MAX_HEADER_BYTES)")
    assert seen.measure_max <= MAX_HEADER_BYTES + 65536  # one read more than the cap at most
    assert "header block exceeds" in seen.last["error"]
    assert seen.last["state"] in ("retrying", "connecting")
    assert_unharmed(seen)


async def test_huge_content_length_is_refused_before_reading_it(simulator):
    async def behaviour(peer):
        request = await peer.request()
        peer.writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {request.headers.get('CSeq')}\r\n"
                          f"Content-Length: 4000000000\r\n\r\n".encode())
        while True:
            peer.writer.write(bytes(65536))
            await peer.writer.drain()
            await asyncio.sleep(0.001)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            seen = await b.watch(2.0, lambda: buffered(b), until=lambda status: bool(status["error"]))
    finally:
        await camera.close()
    report("huge Content-Length (4 GB)", seen, f"a body holds at most {MAX_BODY_BYTES >> 20} MiB (MAX_BODY_BYTES)")
    assert seen.measure_max <= MAX_BODY_BYTES
    assert "exceeds" in seen.last["error"] and "4000000000" in seen.last["error"]
    assert_unharmed(seen)


async def test_ten_thousand_media_are_refused_without_a_single_setup(simulator):
    sdp = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=hostile\nt=0 0\n" + "".join(
        f"m=audio 0 RTP/AVP 0\na=control:trackID={i}\n" for i in range(10_000))

    async def behaviour(peer):
        await peer.handshake(sdp)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            seen = await b.watch(2.0, until=lambda status: bool(status["error"]))
    finally:
        await camera.close()
    report("10,000 media in the SDP", seen, f"more than {MAX_MEDIA_SECTIONS} media refused (MAX_MEDIA_SECTIONS)")
    assert not [r for r in camera.requests if r.method == "SETUP"]
    assert "10000 media sections" in seen.last["error"]
    assert seen.last["media"] == []
    assert_unharmed(seen)


async def test_forty_media_set_up_sixteen_tracks_with_channels_in_a_byte():
    sdp = H264_SDP.split("m=")[0] + "".join(
        f"m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:trackID={i}\n" for i in range(40))
    camera = await HostileCamera(lambda peer: peer.handshake(sdp)).start()
    try:
        client = RtspClient(ClientConfig(camera.url(), transport="tcp"))
        playing = await client.start()
        await client.close(0.1)
    finally:
        await camera.close()
    assert len(playing.tracks) == MAX_TRACKS
    assert len([r for r in camera.requests if r.method == "SETUP"]) == MAX_TRACKS
    assert max(max(t.channels) for t in playing.tracks) <= 255
    skipped = [m for m in client.connection.media_states(0.0) if m.track is None]
    assert len(skipped) == 40 - MAX_TRACKS and skipped[0].state == f"not set up: more than {MAX_TRACKS} tracks"
