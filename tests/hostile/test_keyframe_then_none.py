"""One keyframe, then only predicted frames: the GOP cache a new viewer starts from must not grow forever."""

import asyncio

import pytest

from opticlink.live.feed import MAX_GOP_BYTES
from tests.hostile.harness import H264_SDP, HostileCamera, assert_unharmed, bench, report, rtp

PACKETS_PER_FRAME = 6  # 6 x 60 KB = 360 KB a frame, 10.8 MB/s at 30 fps: past 32 MiB in about 3 s


@pytest.mark.slow
async def test_gop_cache_is_dropped_at_its_cap_until_the_next_keyframe(simulator):
    async def behaviour(peer):
        channels = await peer.handshake(H264_SDP)
        asyncio.get_running_loop().create_task(peer.keep_answering())
        loop = asyncio.get_running_loop()
        start, seq = loop.time(), 0
        for frame in range(100_000):
            kind = b"\x65" if frame == 0 else b"\x41"  # one IDR slice, then P slices for ever
            for part in range(PACKETS_PER_FRAME):
                await peer.send(channels[0][0], rtp(kind + bytes(60_000), seq=seq, ts=frame * 3000,
                                                    marker=part == PACKETS_PER_FRAME - 1))
                seq += 1
            await asyncio.sleep(max(0.0, start + (frame + 1) / 30 - loop.time()))

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            seen = await b.watch(5.0, lambda: b.bad.live.gop_bytes)
            overflows = b.bad.live.gop_overflows
    finally:
        await camera.close()
    report("keyframe then none (10.8 MB/s)", seen, f"GOP cache at most {MAX_GOP_BYTES >> 20} MiB (MAX_GOP_BYTES)")
    assert overflows >= 1
    assert seen.measure_max <= MAX_GOP_BYTES
    assert any("new viewers wait for the next keyframe" in p for p in seen.last["problems"]), seen.last["problems"]
    assert_unharmed(seen)
