"""AAC with `sizelength=1`: AU headers of one bit make tens of thousands of units of one packet."""

import asyncio

import pytest

from opticlink.rtp.formats.aac import MAX_UNITS_PER_PACKET
from tests.hostile.harness import HostileCamera, assert_unharmed, bench, report, rtp

AAC_SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=hostile
t=0 0
m=audio 0 RTP/AVP 97
a=rtpmap:97 MPEG4-GENERIC/8000/1
a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=1;indexlength=0;indexdeltalength=0;config=1588
a=control:trackID=0
"""
PACKETS_PER_SECOND = 20


def flood_payload() -> bytes:
    header_bits = 0xFFF8  # 65,528 AU headers of one bit each: every unit one byte long
    headers = b"\xff" * (header_bits // 8)
    data = b"\x01" * (65535 - 12 - 2 - len(headers))
    return header_bits.to_bytes(2, "big") + headers + data


@pytest.mark.slow
async def test_au_header_flood_is_dropped_whole_and_harms_no_one(simulator):
    sent = 0

    async def behaviour(peer):
        nonlocal sent
        channels = await peer.handshake(AAC_SDP)
        asyncio.get_running_loop().create_task(peer.keep_answering())
        payload = flood_payload()
        for seq in range(10_000):
            await peer.send(channels[0][0], rtp(payload, seq=seq, ts=seq * 1024, pt=97, marker=True))
            sent += 1
            await asyncio.sleep(1 / PACKETS_PER_SECOND)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            def units() -> float:
                ingest = b.bad.session.ingest
                return sum(s.receiver.units for s in ingest.states.values()) if ingest else 0

            seen = await b.watch(3.0, units)
    finally:
        await camera.close()
    report("AAC AU-header flood (sizelength=1, 20 packets/s)", seen,
           f"at most {MAX_UNITS_PER_PACKET} units per packet (MAX_UNITS_PER_PACKET)")
    assert sent >= 40
    assert seen.measure_max <= MAX_UNITS_PER_PACKET * sent
    assert any("more than 64 AU headers" in p for p in seen.last["problems"]), seen.last["problems"]
    assert seen.last["state"] == "playing"
    assert_unharmed(seen)
