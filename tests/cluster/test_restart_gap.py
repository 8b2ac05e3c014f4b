"""A node back within a second of its crash takes its cameras again at its first step: the time its
recordings miss is indexed as a gap however short (the recorder alone indexes only gaps over GAP_S)."""

from __future__ import annotations

import time

import pytest

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.record.recorder import GAP_S
from opticlink.sim.server import SimulatorServer
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from tests.cluster.helpers import until
from tests.conftest import small_camera


@pytest.mark.slow
async def test_a_node_restarted_at_once_indexes_the_second_its_recordings_miss(tmp_path):
    database = Database.open(tmp_path)
    recordings = Recordings(database)
    run = recordings.new_run("door")
    ended = time.time() - GAP_S / 2  # the crashed node's last frame: under GAP_S ago
    before = recordings.add_segment("door", run, "door/old.mov", start_wall=ended - 2, media_start_us=0,
                                    wall_source="sr", video_codec="h264", audio_codec=None)
    recordings.update_segment(before, end_wall=ended, media_end_us=2_000_000, bytes=1, frames=1,
                               keyframes=[0], done=True)
    try:
        async with SimulatorServer([small_camera("door")], port=0) as sim:
            config = ServiceConfig(cameras=[CameraConfig(id="door", url=sim.url("door"))], data_dir=tmp_path,
                                   database="file", port=0, segment_seconds=2, record=True)
            async with running(config, node="a"):
                def closed():  # type: ignore[no-untyped-def]
                    return [g for g in recordings.gaps("door") if g.end_wall is not None]

                gaps = await until(closed, 20, "the gap since the crash closed")
        first = min(s.start_wall for s in recordings.segments("door") if s.id != before)
        assert [(g.start_wall, g.end_wall, g.cause) for g in gaps] == [(ended, first, "service not running")]
    finally:
        database.close()
