"""Issue 15, item 5 (flat memory): a camera's receive path holds no more after ten minutes than after two.

The sans-IO chain a `CameraSession` drives (a `TrackReceiver` per track: parser, jitter buffer,
statistics, depacketizer; the `SyncEngine`; the `FrameMerger`) is fed ten minutes of a simulated
camera behind the network issue 15 measured (20 ms of jitter, 1 % loss, some reordering), with
Sender Reports, a reboot (new SSRCs and timestamps) and Sender Reports of sources that never send
RTP. What it keeps (tracemalloc, the frames it emits dropped at once) must not grow past warm-up.
Snapshots of `opticlink serve` (8 cameras, those faults) found no growth in this chain, only in the
diagnostics history; this test keeps the chain so (a per-packet int kept by mistake fails it).
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from opticlink.rtp.receiver import TrackReceiver
from opticlink.rtp.rtcp import NTP_EPOCH_OFFSET, SenderReport, parse_rtcp
from opticlink.sim.camera import CameraModel
from opticlink.sim.faults import Faults
from opticlink.sim.media import encode_audio, synthetic_audio, synthetic_video
from opticlink.sim.network import NetworkModel
from opticlink.sync import FrameMerger, SyncEngine
from opticlink.sync.engine import TrackInfo
from opticlink.sync.reports import SenderReportInfo

STEP_S = 0.02  # simulated time between two turns of the loop
WARMUP_S = 120.0
RUN_S = 600.0
ALLOWED_GROWTH = 64 << 10  # bytes, between the end of the warm-up and the end of the run


@pytest.mark.slow
def test_receive_path_memory_stays_flat_over_ten_minutes_of_a_lossy_jittery_camera():
    video = synthetic_video(160, 96, 25, seconds=2, bitrate=200_000)
    audio = encode_audio(synthetic_audio(8000, 2), "pcmu")
    model = CameraModel(video, audio, Faults(reboot_at_s=300.0), content=False)
    network = NetworkModel(jitter_ms=20, loss_pct=1, reorder_pct=0.5, ordered=False, seed=5)
    receivers = {i: TrackReceiver(t.format) for i, t in enumerate(model.tracks)}
    engine = SyncEngine([TrackInfo(i, t.kind, t.format.clock_rate) for i, t in enumerate(model.tracks)], epoch=0.0)
    merger = FrameMerger(0.25)
    frames = 0
    foreign = 0

    def deliver(track: int, units: list, now: float) -> None:
        nonlocal frames
        for unit in units:
            frame = engine.push_unit(track, unit, now)
            if frame is not None:
                frames += len(merger.push(frame, now))

    tracemalloc.start()
    try:
        before = None
        now = 0.0
        while now < RUN_S:
            now += STEP_S
            network.deliver(model.advance(now))
            for delivery in network.arrivals(now):
                emission, arrival = delivery.emission, delivery.arrival
                receiver = receivers[emission.track]
                if not emission.rtcp:
                    deliver(emission.track, receiver.receive(emission.data, arrival), now)
                    continue
                for packet in parse_rtcp(emission.data):
                    if isinstance(packet, SenderReport):
                        receiver.on_sender_report(packet, arrival)
                        engine.push_sender_report(SenderReportInfo(
                            emission.track, packet.ssrc, packet.ntp_seconds - NTP_EPOCH_OFFSET,
                            packet.rtp_timestamp, arrival))
                        # and one from a source that never sends RTP (SSRC churn): kept only up to a bound
                        foreign += 1
                        engine.push_sender_report(SenderReportInfo(
                            emission.track, 0x10000 + foreign, packet.ntp_seconds - NTP_EPOCH_OFFSET,
                            packet.rtp_timestamp, arrival))
            for index, receiver in receivers.items():
                deadline = receiver.deadline()
                if deadline is not None and now >= deadline:
                    deliver(index, receiver.poll(now), now)
                if round(now / STEP_S) % 50 == 0:
                    receiver.report_block(now)  # the receiver reports a session sends every second
            frames += len(merger.poll(now))
            if before is None and now >= WARMUP_S:
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert frames > 0.9 * RUN_S * (25 + 50)  # the chain did run: video at 25 fps, audio in 20 ms packets
    assert sum(r.buffer.lost for r in receivers.values()) > 0  # ... through the loss
    assert sum(t.reanchors for t in engine.tracks.values()) >= 2  # ... and the reboot
    assert before is not None
    assert after - before <= ALLOWED_GROWTH, f"the receive path grew {after - before} bytes in {RUN_S - WARMUP_S:g} s"
