"""An H.264 FU-A that never ends (no end bit, no marker, the timestamp never changes)."""

import asyncio

import pytest

from opticlink.rtp.formats.base import MAX_UNIT_BYTES
from tests.hostile.harness import H264_SDP, HostileCamera, assert_unharmed, bench, report, rtp

FRAGMENT = 60_000  # bytes of NAL unit per packet
PACKETS_PER_SECOND = 100  # 6 MB/s: past the 8 MiB cap in under 2 s


@pytest.mark.slow
async def test_fu_a_without_end_is_dropped_at_the_unit_cap(simulator):
    async def behaviour(peer):
        channels = await peer.handshake(H264_SDP)
        asyncio.get_running_loop().create_task(peer.keep_answering())
        body = bytes(FRAGMENT)
        await peer.send(channels[0][0], rtp(b"\x7c\x85" + body, seq=0, ts=90_000))  # FU-A start of an IDR
        for seq in range(1, 100_000):
            await peer.send(channels[0][0], rtp(b"\x7c\x05" + body, seq=seq, ts=90_000))  # middle, forever
            await asyncio.sleep(1 / PACKETS_PER_SECOND)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            def held() -> float:
                ingest = b.bad.session.ingest
                if ingest is None:
                    return 0
                d = ingest.states[0].receiver.depacketizer
                return len(d._fu or b"") + sum(len(n) for n in d._nalus)

            seen = await b.watch(4.0, held)
    finally:
        await camera.close()
    report("unterminated FU-A (6 MB/s)", seen, f"a unit holds at most {MAX_UNIT_BYTES >> 20} MiB (MAX_UNIT_BYTES)")
    assert 0 < seen.measure_max <= MAX_UNIT_BYTES
    assert any("unit over 8 MiB dropped" in p for p in seen.last["problems"]), seen.last["problems"]
    assert seen.rss_after_mb - seen.rss_before_mb < 3 * (MAX_UNIT_BYTES >> 20)
    assert_unharmed(seen)
