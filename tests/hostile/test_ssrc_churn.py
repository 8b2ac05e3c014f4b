"""Sender Reports under a new SSRC each time: the reports kept for sources not yet seen must stay few."""

import asyncio
import itertools
import time

import pytest

from opticlink.rtp.rtcp import NTP_EPOCH_OFFSET, SenderReport, seconds_to_ntp, serialize_rtcp
from opticlink.sync.engine import MAX_PENDING_SOURCES
from tests.hostile.harness import HostileCamera, assert_unharmed, bench, report, rtp

PCMU_SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=hostile
t=0 0
m=audio 0 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=control:trackID=0
"""


@pytest.mark.slow
async def test_reports_of_ever_new_sources_keep_a_bounded_few(simulator):
    async def behaviour(peer):
        rtp_channel, rtcp_channel = (await peer.handshake(PCMU_SDP))[0]
        asyncio.get_running_loop().create_task(peer.keep_answering())
        for n in itertools.count():
            await peer.send(rtp_channel, rtp(b"\xff" * 160, seq=n, ts=n * 160, ssrc=0xAAAA, pt=0))
            for k in range(5):  # 250 reports a second, each from a source never seen before
                report_ = SenderReport(0x10000 + 5 * n + k, seconds_to_ntp(time.time() + NTP_EPOCH_OFFSET), n * 160)
                await peer.send(rtcp_channel, serialize_rtcp([report_]))
            await asyncio.sleep(0.02)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator) as b:
            def pending() -> float:
                engine = b.bad.session.engine
                return len(engine.tracks[0].pending) if engine is not None else 0

            seen = await b.watch(3.0, pending)
            reports = b.bad.session.foreign_reports.get(0, 0)
    finally:
        await camera.close()
    report("SSRC churn in Sender Reports (250/s)", seen,
           f"at most {MAX_PENDING_SOURCES} pending sources per track (MAX_PENDING_SOURCES)")
    assert reports > 300
    assert seen.measure_max <= MAX_PENDING_SOURCES
    assert any("SSRC churn" in p for p in seen.last["problems"]), seen.last["problems"]
    assert_unharmed(seen)
