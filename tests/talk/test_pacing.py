"""Talk timestamps kept in step with real time: jitter passes, pauses and slow senders skip,
bursts are dropped; and a camera that plays by timestamp hears words when they were said."""

import asyncio

import numpy as np
import pytest

from opticlink.rtp.formats import RtpFormat
from opticlink.rtp.packet import RtpPacket
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.server import SimulatorServer
from opticlink.talk.encoder import TalkEncoder
from opticlink.talk.pacing import TalkPacer
from opticlink.talk.session import TalkSession
from tests.conftest import small_camera

RATE = 8000
FRAME = 160


def _send(pacer: TalkPacer, arrivals: list[float]) -> list[tuple[float, float] | None]:
    """(slot, skip in seconds) per frame, None for a dropped frame."""
    out: list[tuple[float, float] | None] = []
    for now in arrivals:
        placement = pacer.place(now)
        if placement is None:
            out.append(None)
            continue
        pacer.advance(FRAME)
        out.append((placement.slot, placement.skip / RATE))
    return out


def test_frames_with_network_jitter_run_on_contiguously():
    rng = np.random.default_rng(1)
    arrivals = [100.0 + i * 0.02 + rng.uniform(0, 0.05) for i in range(500)]
    placed = _send(TalkPacer(RATE), arrivals)
    assert all(p is not None and p[1] == 0 for p in placed)
    slots = np.array([p[0] for p in placed if p is not None])
    assert np.allclose(np.diff(slots), 0.02)


def test_a_pause_starts_a_new_talkspurt_at_the_next_frames_arrival():
    arrivals = [10 + i * 0.02 for i in range(50)] + [12 + i * 0.02 for i in range(50)]
    placed = _send(TalkPacer(RATE), arrivals)
    resumed = placed[50]
    assert resumed is not None
    assert abs(resumed[0] - 12.0) < 1e-9 and abs(resumed[1] - 1.0) < 1e-3  # 2 s - 50 frames of 20 ms


def test_a_slow_sender_skips_a_little_and_never_falls_behind():
    arrivals = [i * 0.0207 for i in range(3000)]  # 3.5 % slow: a minute of talk
    pacer = TalkPacer(RATE)
    placed = _send(pacer, arrivals)
    assert all(p is not None for p in placed)
    lags = [now - p[0] for now, p in zip(arrivals, placed, strict=True) if p is not None]
    assert max(lags) <= pacer.late + 1e-9
    assert abs(pacer.skips - 3000 * 0.0007 / pacer.late) <= 1  # one skip per `late` fallen behind


def test_a_burst_after_a_stall_is_cut_to_keep_latency_low():
    arrivals = [i * 0.02 for i in range(50)] + [1.5 + i * 0.001 for i in range(25)]  # stalled 0.5 s, then all
    pacer = TalkPacer(RATE)
    placed = _send(pacer, arrivals)
    assert placed[50] is not None and placed[50][1] > 0.4  # the stall: a gap at the camera
    kept = [p for p in placed[50:] if p is not None]
    assert all(p[0] - now <= pacer.ahead for p, now in zip(placed[50:], arrivals[50:], strict=True) if p is not None)
    assert pacer.dropped == 25 - len(kept) > 0


def test_timestamps_skip_with_a_marker_bit_and_the_short_packet_goes_first():
    encoder = TalkEncoder(RtpFormat(0, "PCMU", 8000), 20)
    first, _ = encoder.encode(np.zeros(100, np.int16), 8000)
    assert first == []
    packets = encoder.skip(800)
    packets += encoder.encode(np.zeros(160, np.int16), 8000)[0]
    parsed = [RtpPacket.parse(p) for p in packets]
    assert [len(p.payload) for p in parsed] == [100, 160]
    assert (parsed[1].timestamp - parsed[0].timestamp) & 0xFFFFFFFF == 900
    assert parsed[1].marker


@pytest.mark.slow
async def test_a_camera_hears_each_talkspurt_when_it_was_said():
    spec = small_camera("cam1")
    async with SimulatorServer([spec], port=0) as sim:
        session = TalkSession("cam1", ClientConfig(sim.url("cam1")))
        await session.start("tester")
        loop = asyncio.get_running_loop()
        said: list[float] = []
        for burst in range(3):
            begin = loop.time()
            said.append(begin)
            for i in range(10):
                session.push("tester", np.full(FRAME, 1000 * (burst + 1), np.int16), RATE)
                await asyncio.sleep(max(0.0, begin + (i + 1) * 0.02 - loop.time()))
            await asyncio.sleep(0.3 + 0.2 * burst)  # the talker pauses
        session.stop("tester")
        await asyncio.sleep(0.1)
        await session.close()
    starts = [p for _, p in spec.sink.packets if p.marker]
    assert len(starts) == 3
    first = starts[0]
    for packet, when in zip(starts, said, strict=True):
        by_timestamp = ((packet.timestamp - first.timestamp) & 0xFFFFFFFF) / RATE
        assert abs(by_timestamp - (when - said[0])) < 0.03  # a camera playing by timestamp keeps the pauses
