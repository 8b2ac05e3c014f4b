"""The recorder's public gap counter: every gap it indexes counted once (`RecorderStats.gaps`), and the
frames lost to the recording counted (`frames_skipped`: its queue overflowed, the disk was full); then the
same counts through the service: /metrics, the camera's status and its diagnostics."""

import asyncio
import time

import httpx
import pytest

from opticlink.api import diagnostics
from opticlink.api.app import create_app
from opticlink.hub import FrameBus, Gap
from opticlink.record.recorder import Recorder
from opticlink.sim.faults import Faults
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from tests.auth.helpers import credentials
from tests.record.test_recorder import replayed_frames, service_for


def _recorder(tmp_path):
    database = Database.open(tmp_path)
    recordings = Recordings(database)
    recorder = Recorder("cam", tmp_path / "rec", recordings, FrameBus("cam").subscribe("r", policy="gaps"),
                        segment_s=60.0, server_wall=lambda pts: 1.8e9 + pts / 1e6)
    return database, recordings, recorder


def test_overflow_gaps_are_counted_once_and_their_frames_as_skipped(tmp_path):
    database, recordings, recorder = _recorder(tmp_path)
    frames = replayed_frames(14, Faults(seed=2))

    def feed(start: float, end: float) -> None:
        for arrival, frame in frames:
            if start <= arrival < end:
                recorder.process([frame], arrival)

    counts = lambda: (recorder.stats.gaps, recorder.stats.frames_skipped)  # noqa: E731
    feed(0.0, 4.0)
    assert counts() == (0, 0) and recorder.stats.segments == 1
    lost = Gap(4_000_000, 4_300_000, frames=5, bytes=5000)  # the bus could not queue these for the recorder
    recorder.process([], 4.0, [lost])
    assert counts() == (1, 5)
    lost.frames = 9  # still open: the bus hands the same gap again, with the frames lost since
    recorder.process([], 4.2, [lost])
    assert counts() == (1, 9)
    feed(4.4, 8.0)  # recording resumes at the next keyframe
    assert recorder.stats.segments == 2
    recorder.process([], 8.0, [Gap(8_000_000, 8_100_000, frames=3, bytes=900)])  # another one
    assert counts() == (2, 12)
    feed(8.2, 14.0)
    recorder.close()
    gaps = recordings.gaps("cam")
    assert [g.cause for g in gaps] == ["recorder overflow"] * 2 == ["recorder overflow"] * recorder.stats.gaps
    assert all(g.end_wall is not None for g in gaps)  # each closed when recording resumed
    assert recorder.stats.frames_skipped == 12
    database.close()


def test_a_full_disk_counts_one_gap_and_the_frames_it_could_not_write(tmp_path, monkeypatch):
    from opticlink.record import recorder as recorder_module
    from opticlink.record.segment import BatchedFile

    database, recordings, recorder = _recorder(tmp_path)
    frames = replayed_frames(16, Faults(seed=2))
    real_flush = BatchedFile.flush
    clock = {"now": 0.0}

    def flush(self) -> None:
        if 5.0 <= clock["now"] < 6.5 and self._pending:
            raise OSError(28, "No space left on device")
        real_flush(self)

    monkeypatch.setattr(BatchedFile, "flush", flush)
    monkeypatch.setattr(recorder_module, "DISK_RETRY_S", 3.0)
    for arrival, frame in frames:
        clock["now"] = arrival
        recorder.process([frame], arrival)
    recorder.close()
    gaps = recordings.gaps("cam")
    assert [g.cause for g in gaps] == ["disk full"] and recorder.stats.gaps == 1
    # 3 s of frames (25 fps video, 50 audio packets a second) came while the recorder waited for space
    assert 100 < recorder.stats.frames_skipped < 300, recorder.stats
    database.close()


async def _until(check, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await check()
        if found is not None:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError("never reached")


@pytest.mark.slow
async def test_the_service_exports_the_recording_gaps_in_metrics_status_and_diagnostics(tmp_path):
    # the camera stops sending 3 s after each PLAY (keeping its connection): the recorder opens a gap
    spec = camera("cam", width=320, height=180, bitrate=300_000, faults=Faults(stall_at_s=3.0))
    async with SimulatorServer([spec], port=0) as server:
        service = service_for(server.url("cam"), tmp_path)
        await service.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                         base_url="http://127.0.0.1", headers=credentials(service).bearer) as client:

                async def gapped():
                    text = (await client.get("/metrics")).text
                    line = next((x for x in text.splitlines()
                                 if x.startswith('opticlink_recording_gaps_total{camera="cam"}')), None)
                    return text if line is not None and float(line.split()[-1]) >= 1 else None

                text = await _until(gapped, 25)
                assert 'opticlink_recording_frames_skipped_total{camera="cam"}' in text
                status = (await client.get("/api/cameras/cam")).json()
                assert status["recording"]["gaps"] >= 1 and status["recording"]["frames_skipped"] >= 0

                async def diagnosed():
                    report = (await client.get("/api/cameras/cam/diagnostics?seconds=60")).json()
                    recording = report["recording"]
                    return report if recording is not None and recording["gaps"] >= 1 else None

                report = await _until(diagnosed, 10)
                assert diagnostics.monitor(service).task is not None
                assert set(report["recording"]) == {"gaps", "frames_skipped", "segments", "bytes", "active"}
                assert report["recording"]["segments"] >= 1
                assert "recording: " in report["verdict"] and " gap" in report["verdict"], report["verdict"]
        finally:
            await service.stop()
    # the counter is the gaps the recorder indexed, each once
    assert service.cameras["cam"].recorder.stats.gaps == len(service.recordings.gaps("cam")) >= 1
