"""Interleaved frames of the largest size (65,535 bytes), on channels we never set up and as RTCP."""

import asyncio

import pytest

from tests.hostile.harness import H264_SDP, HostileCamera, assert_unharmed, bench, report, rtp

LARGEST = 0xFFFF  # the 16-bit length field's limit: the most one frame can claim


@pytest.mark.slow
async def test_largest_frames_on_unknown_channels_and_rtcp_are_dropped_as_they_come(simulator):
    async def behaviour(peer):
        rtp_channel, rtcp_channel = (await peer.handshake(H264_SDP))[0]
        asyncio.get_running_loop().create_task(peer.keep_answering())
        for n in range(1_000_000):  # about 13 MB/s
            await peer.send(200, bytes(LARGEST))
            await peer.send(rtcp_channel, b"\x81\xc8" + bytes(LARGEST - 2))  # an SR whose length lies
            await peer.send(rtp_channel, rtp(b"\x65" + bytes(1000), seq=n, ts=n * 3000, marker=True))
            await asyncio.sleep(0.01)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            def buffered() -> float:
                client = b.bad.session.client
                return len(client.connection._reader._buf) if client is not None else 0

            seen = await b.watch(3.0, buffered)
    finally:
        await camera.close()
    report("largest interleaved frames (13 MB/s)", seen,
           "the reader holds at most one frame (64 KiB, the format's own limit) plus one read")
    assert seen.measure_max <= LARGEST + 4 + 262144
    problems = " ".join(seen.last["problems"])
    assert "interleaved frames on channels no track was set up on" in problems
    assert "malformed RTCP packets" in problems
    assert seen.last["state"] == "playing"
    assert seen.rss_after_mb - seen.rss_before_mb < 20
    assert_unharmed(seen)
