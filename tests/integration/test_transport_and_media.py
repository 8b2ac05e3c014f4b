"""Transport fallback, UDP source checks and honest media reporting, against the simulator over loopback."""

import asyncio
import contextlib
import dataclasses
import json
import socket

import pytest

from opticlink.camera.probe import format_report, probe
from opticlink.camera.session import CameraSession
from opticlink.record.capture import capture
from opticlink.rtsp.client import ClientConfig, MediaState
from opticlink.sim.server import SimulatorServer, _Connection
from tests.conftest import small_camera

MPA_SECTION = b"m=audio 0 RTP/AVP 14\r\na=control:trackID=9\r\na=recvonly\r\n"


@pytest.fixture
def describes_mpa(monkeypatch):
    """The simulator's descriptions gain an MPEG audio section (never set up: we do not take MPA)."""
    original = _Connection._describe

    def describe(self, *args, **kwargs):
        response = original(self, *args, **kwargs)
        response.body += MPA_SECTION
        return response

    monkeypatch.setattr(_Connection, "_describe", describe)


def refusing(lower):
    spec = small_camera()
    spec.transports = tuple(t for t in ("tcp", "udp") if t != lower)
    return [spec]


@pytest.mark.parametrize("simulator", [refusing("tcp")], indirect=True)
async def test_camera_refusing_tcp_with_461_plays_over_udp_without_any_option(simulator):
    report = await probe(ClientConfig(simulator.url("cam1")), seconds=1.0)
    assert report.error is None and report.transport == "udp" and report.transport_requested == "auto"
    assert report.fallbacks == ["TCP: SETUP of video H264/90000 (live) answered 461 Unsupported Transport"]
    assert report.tracks[0].units > 10 and report.tracks[1].units > 20
    text = format_report(report)
    assert "over UDP (auto)" in text and "answered 461 Unsupported Transport (fell back)" in text
    assert json.loads(json.dumps(report.to_dict()))["transport"] == "udp"


@pytest.mark.parametrize("simulator", [refusing("udp")], indirect=True)
async def test_camera_refusing_udp_plays_over_tcp_when_udp_is_preferred(simulator):
    report = await probe(ClientConfig(simulator.url("cam1"), transport="udp,tcp"), seconds=1.0)
    assert report.error is None and report.transport == "tcp"
    assert report.fallbacks[0].startswith("UDP: SETUP of video H264/90000 (live) answered 461")
    assert report.tracks[0].units > 10
    report = await probe(ClientConfig(simulator.url("cam1"), transport="udp"), seconds=0.3)
    assert "camera answered 461 Unsupported Transport" in report.error  # an explicit transport is kept


async def test_a_datagram_from_a_foreign_port_is_dropped_and_counted(simulator):
    session = CameraSession(ClientConfig(simulator.url("cam1"), transport="udp"), reconnect=False)
    task = asyncio.create_task(session.run())
    try:
        await session.wait_playing(5)
        connection = session.client.connection
        video = connection.tracks[0]
        assert video.lower_transport == "udp"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
            for _ in range(3):  # a well-formed RTP header, so it would count as video if taken
                intruder.sendto(b"\x80\x60\x00\x01" + bytes(8) + b"junk", ("127.0.0.1", video.client_ports[0]))
            await asyncio.sleep(0.3)
        assert connection.datagrams_dropped == 3
        receiver = session.ingest.states[0].receiver
        assert receiver.malformed == 0 and receiver.ssrc_changes == 0 and receiver.units > 0
    finally:
        await session.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_probe_lists_every_section_unsupported_codecs_included(simulator, describes_mpa):
    report = await probe(ClientConfig(simulator.url("cam1")), seconds=0.5)
    assert report.error is None
    assert report.media == [MediaState(0, "video", "H264/90000", "recvonly", "playing", 0),
                            MediaState(1, "audio", "PCMU/8000", "recvonly", "playing", 1),
                            MediaState(2, "audio", "MPA/90000", "recvonly", "unsupported codec MPA")]
    assert "  media 2: audio MPA/90000 (recvonly): unsupported codec MPA" in format_report(report).splitlines()
    media = json.loads(json.dumps(report.to_dict()))["media"]
    assert media[2] == {"position": 2, "kind": "audio", "codec": "MPA/90000", "direction": "recvonly",
                        "state": "unsupported codec MPA", "track": None}


async def test_capture_names_the_media_it_leaves_out(simulator, describes_mpa, tmp_path):
    result = await capture(ClientConfig(simulator.url("cam1")), 0.5, tmp_path / "c.mkv")
    assert result.error is None
    assert result.skipped == ["audio MPA/90000 (media 2): unsupported codec MPA"]


@pytest.mark.slow
async def test_an_audio_only_capture_reports_its_duration(tmp_path):
    """Needs record/mkv.py to count the audio's end, not only video frames, in `duration_s`."""
    spec = dataclasses.replace(small_camera(), video=None)
    async with SimulatorServer([spec], port=0) as server:
        result = await capture(ClientConfig(server.url("cam1")), 2.0, tmp_path / "audio.mkv")
    assert result.error is None and result.file.video_frames == 0 and result.file.audio_samples > 8000
    assert result.file.duration_s == pytest.approx(result.file.audio_samples / 8000, abs=0.1)
