"""The simulator serves a caller's clip (here av-drift-detector's test video) in place of its own."""

import av_drift_detector as avd
import pytest

from opticlink.camera.probe import probe
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer


@pytest.fixture(scope="module")
def drift_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "sync.mp4"
    avd.generate(str(path), fps="25", duration=3, width=320, height=240, sample_rate=8000, music=False)
    return path


def test_clip_is_transcoded_to_a_camera_profile(drift_clip):
    spec = camera("drift", clip=drift_clip)
    assert len(spec.video.frames) == 75 and spec.video.keyframes[0] and spec.video.keyframes[25]
    assert (spec.video.width, spec.video.height) == (320, 240)
    assert spec.audio.codec == "pcmu" and spec.audio.samples == 3 * 8000  # one loop period for both tracks


async def test_clip_plays_through_the_simulator(drift_clip):
    async with SimulatorServer([camera("drift", clip=drift_clip)], port=0) as server:
        report = await probe(ClientConfig(server.url("drift")), seconds=1.0)
    assert report.error is None
    assert report.tracks[0].units >= 20 and report.tracks[1].units >= 40
