"""Our RTSP client against our simulator over real loopback sockets."""

import asyncio
import contextlib
import logging

import pytest

from opticlink.camera.probe import probe
from opticlink.camera.session import CameraSession
from opticlink.errors import RtspError
from opticlink.rtp.formats.g711 import G711Packetizer
from opticlink.rtp.rtcp import ReceiverReport, parse_rtcp
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.faults import Faults
from opticlink.sim.server import SimulatorServer
from tests.conftest import small_camera

EVERY_FAULT = Faults(audio_skew_ppm=300, video_skew_ppm=-50, av_offset_ms=30, jitter_ms=40, loss_pct=3,
                     reorder_pct=3, sender_reports="jumping", sr_interval_s=0.5, reboot_at_s=2.0,
                     timestamp_jump_at_s=1.0, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_every_fault_on_still_plays_and_is_counted(transport):
    async with SimulatorServer([small_camera(faults=EVERY_FAULT)], port=0) as server:
        report = await probe(ClientConfig(server.url("cam1"), transport=transport), seconds=4.0)
        session = server.latest_session("cam1")
    assert report.error is None
    video, audio = report.tracks
    assert video.units > 40 and audio.units > 100
    assert video.lost > 0 and audio.lost > 0
    assert video.ssrc_changes == 1 and audio.ssrc_changes == 1
    assert audio.sender_reports >= 4
    if transport == "udp":
        assert audio.reordered + video.reordered > 0
    rrs = [p for data in session.rtcp_received for p in parse_rtcp(data) if isinstance(p, ReceiverReport)]
    assert len(rrs) >= 4 and any(block.cumulative_lost > 0 for rr in rrs for block in rr.reports)


@pytest.mark.parametrize("simulator", [[small_camera(username="admin", password="pa ss")]], indirect=True)
async def test_digest_protected_camera_plays_with_credentials_and_explains_without(simulator):
    report = await probe(ClientConfig(simulator.url("cam1", credentials=True)), seconds=0.5)
    assert report.error is None and report.tracks[0].units > 0
    report = await probe(ClientConfig(simulator.url("cam1"), username="admin", password="pa ss"), seconds=0.3)
    assert report.error is None
    report = await probe(ClientConfig(simulator.url("cam1")), seconds=0.3)
    assert "no credentials were given" in report.error and "Digest SHA-256" in report.error
    report = await probe(ClientConfig(simulator.url("cam1"), username="admin", password="nope"), seconds=0.3)
    assert "rejected the credentials" in report.error


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_backchannel_audio_reaches_the_camera_speaker_byte_exact(simulator, transport):
    session = CameraSession(ClientConfig(simulator.url("cam1"), backchannel=True, transport=transport),
                            reconnect=False)
    task = asyncio.create_task(session.run())
    await session.wait_playing(5)
    talk = bytes(range(256)) * 10
    packetizer = G711Packetizer(0, ssrc=42, packet_ms=40)
    for packet in packetizer.push(talk) + packetizer.flush():
        assert session.send_backchannel(packet)
    await asyncio.sleep(0.3)
    await session.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    sink = simulator.cameras["cam1"].sink
    assert bytes(sink.payload) == talk
    assert [len(p.payload) for _, p in sink.packets][:3] == [320, 320, 320]


@pytest.mark.parametrize("simulator", [[small_camera(backchannel=False)]], indirect=True)
async def test_camera_without_backchannel_answers_551_and_live_tracks_still_play(simulator):
    report = await probe(ClientConfig(simulator.url("cam1"), backchannel=True), seconds=0.5)
    assert report.error is None and len(report.tracks) == 2 and report.tracks[1].units > 0
    assert report.backchannel.startswith("unavailable") and "551" in report.backchannel


@pytest.mark.parametrize("simulator", [[small_camera(faults=Faults(drop_at_s=1.0))]], indirect=True)
async def test_dropped_connection_is_reported_and_the_session_reconnects(simulator, caplog):
    units = []
    session = CameraSession(ClientConfig(simulator.url("cam1")), name="door", on_unit=lambda t, u: units.append(t))
    task = asyncio.create_task(session.run())
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            await asyncio.sleep(0.1)
            if session.connects >= 2 and session.state == "playing":
                break
    await session.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert session.connects >= 2
    assert "camera door: connection: the camera closed the connection" in caplog.text
    assert len(units) > 50


@pytest.mark.slow
@pytest.mark.parametrize("simulator", [[small_camera()]], indirect=True)
async def test_keepalive_holds_a_session_past_a_short_server_timeout(simulator):
    simulator.cameras["cam1"].session_timeout = 2
    report = await probe(ClientConfig(simulator.url("cam1")), seconds=4.0)
    assert report.error is None
    assert report.tracks[0].units > 80  # 4 s at 25 fps: the camera never timed us out


@pytest.mark.parametrize("simulator", [[small_camera(faults=Faults(stall_at_s=0.5))]], indirect=True)
async def test_a_camera_that_goes_silent_is_given_up_with_a_clear_error(simulator):
    config = ClientConfig(simulator.url("cam1"), stall_timeout=1.0)
    report = await probe(config, seconds=5.0)
    assert report.error == "PLAY: no media from the camera for 1 s"


async def _serve_once(answer: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_garbage_from_a_camera_closes_the_session_with_a_clear_error(caplog):
    server, port = await _serve_once(b"\x00\xffNOT RTSP AT ALL\r\n\r\n")
    with caplog.at_level(logging.WARNING):
        async with server:
            report = await probe(ClientConfig(f"rtsp://127.0.0.1:{port}/x"), seconds=1)
    assert report.error.startswith("stream: malformed data from the camera")
    assert "camera probe: stream: malformed data from the camera: malformed RTSP request line" in caplog.text
    assert asyncio.get_running_loop().is_running()


async def test_redirect_is_followed_to_the_camera(simulator):
    target = simulator.url("cam1").encode()
    server, port = await _serve_once(b"RTSP/1.0 302 Found\r\nCSeq: 1\r\nLocation: " + target + b"\r\n\r\n")
    async with server:
        report = await probe(ClientConfig(f"rtsp://127.0.0.1:{port}/old"), seconds=0.5)
    assert report.error is None and report.tracks[0].units > 0


async def test_unreachable_camera_fails_at_connect():
    session = CameraSession(ClientConfig("rtsp://127.0.0.1:9/nothing"), reconnect=False)
    with pytest.raises(RtspError, match=r"connect: cannot reach 127\.0\.0\.1:9"):
        await session.run()


@pytest.mark.parametrize("simulator", [[small_camera(faults=Faults(audio_skew_ppm=300, jitter_ms=40, seed=12))]],
                         indirect=True)
@pytest.mark.slow
async def test_probe_reports_the_sync_engines_view(simulator):
    report = await probe(ClientConfig(simulator.url("cam1")), seconds=4.0)
    tracks = {t["kind"]: t for t in report.sync["tracks"]}
    assert tracks["audio"]["source"] == "rtcp" and tracks["video"]["source"] == "rtcp"
    assert tracks["audio"]["skew_ppm"] == pytest.approx(300, abs=60)  # from four reports at 8 kHz
    assert report.sync["av_correction_ms"] is not None
    from opticlink.camera.probe import format_report

    text = format_report(report)
    assert "timing from rtcp" in text and "A/V: audio moved" in text
