"""FFmpeg's RTSP client against our simulator: our server speaks real RTSP."""

import asyncio
import json

import pytest

from tests.conftest import small_camera


async def run(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("simulator", [[small_camera("cam1"), small_camera("cam2", audio="aac"),
                                        small_camera("cam3", audio="pcma")]], indirect=True)
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_ffprobe_sees_both_tracks_of_every_camera(simulator, transport):
    expected = {"cam1": "pcm_mulaw", "cam2": "aac", "cam3": "pcm_alaw"}
    for name, audio_codec in expected.items():
        code, out, err = await run("ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_streams",
                                   "-of", "json", simulator.url(name))
        assert code == 0, err
        streams = {s["codec_type"]: s for s in json.loads(out)["streams"]}
        assert streams["video"]["codec_name"] == "h264"
        assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
        assert streams["audio"]["codec_name"] == audio_codec


@pytest.mark.parametrize("simulator", [[small_camera(username="viewer", password="s3cret")]], indirect=True)
async def test_ffmpeg_decodes_a_digest_protected_camera_without_errors(simulator):
    code, _, err = await run("ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i",
                             simulator.url("cam1", credentials=True), "-t", "3", "-f", "null", "-")
    assert code == 0 and err.strip() == ""
    code, _, err = await run("ffprobe", "-v", "error", simulator.url("cam1"))
    assert code != 0 and "401" in err


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_ffmpeg_decodes_the_simulators_b_frame_camera_with_parameter_sets_only_in_the_sdp(codec):
    # (FFmpeg cannot stream-copy B-frame RTSP to a file, ours or GStreamer's: "Can't write packet with
    # unknown timestamp"; it decodes it, which is what shows our simulator's stream is conformant)
    from opticlink.sim.presets import camera
    from opticlink.sim.server import SimulatorServer

    spec = camera("cam", width=320, height=180, bitrate=300_000, codec=codec, bframes=2, parameter_sets="sdp")
    async with SimulatorServer([spec], port=0) as server:
        code, _, err = await run("ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", server.url("cam"), "-t", "3",
                                 "-f", "null", "-")
        assert code == 0 and err.strip() == "", err
        code, probed, err = await run("ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v",
                                      "-show_entries", "stream=codec_name,has_b_frames,width", "-of", "json",
                                      server.url("cam"))
    assert code == 0, err
    stream = json.loads(probed)["streams"][0]
    assert stream["codec_name"] == {"h264": "h264", "h265": "hevc"}[codec] and stream["width"] == 320
    assert stream["has_b_frames"] >= 1
