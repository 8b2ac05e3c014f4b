"""Our client against Debian's GStreamer RTSP server (RTSPOnvifServer), an independent implementation."""

import asyncio
import contextlib
import subprocess

import av
import numpy as np
import pytest

from opticlink.camera.session import CameraSession
from opticlink.dsp.g711 import decode_g711, encode_g711
from opticlink.media import AccessUnit, split_length_prefixed
from opticlink.rtp.formats.g711 import G711Packetizer
from opticlink.rtsp.client import ClientConfig
from tests.peers.conftest import gstreamer_server


async def play(config: ClientConfig, seconds: float, during=None) -> tuple[CameraSession, dict[int, list[AccessUnit]]]:
    units: dict[int, list[AccessUnit]] = {}
    session = CameraSession(config, reconnect=False, on_unit=lambda t, u: units.setdefault(t, []).append(u))
    task = asyncio.create_task(session.run())
    await session.wait_playing(15)
    if during is not None:
        await during(session)
    await asyncio.sleep(seconds)
    await session.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return session, units


def decode_video(units: list[AccessUnit], codec: str) -> list[av.VideoFrame]:
    ctx = av.CodecContext.create(codec, "r")
    frames = []
    for unit in units:
        annexb = b"".join(b"\x00\x00\x00\x01" + nal for nal in split_length_prefixed(unit.data))
        frames += ctx.decode(av.Packet(annexb))
    return frames


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


@pytest.mark.parametrize(("video", "audio"), [("h264", "pcmu"), ("h264", "aac"), ("h265", "none")])
async def test_our_client_plays_and_depacketizes_gstreamer_streams(gst, video, audio):
    with gst(video=video, audio=audio) as (url, _):
        session, units = await play(ClientConfig(url), seconds=2.5)
    tracks = {t.kind: t for t in session.tracks}
    assert tracks["video"].format.encoding == video.upper()
    frames = decode_video(units[tracks["video"].index], {"h264": "h264", "h265": "hevc"}[video])
    assert len(frames) >= 40 and (frames[0].width, frames[0].height) == (320, 240)
    assert units[tracks["video"].index][0].keyframe
    if audio == "none":
        assert "audio" not in tracks
        return
    audio_units = units[tracks["audio"].index]
    if audio == "pcmu":
        pcm = decode_g711(b"".join(u.data for u in audio_units), "pcmu").astype(float)
        rate = 8000
    else:
        config = audio_units[0].config
        ctx = av.CodecContext.create("aac", "r")
        ctx.extradata = config.extra
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for u in audio_units for f in ctx.decode(av.Packet(u.data))])
        rate = config.sample_rate
        assert (rate, config.channels, config.frame_samples) == (16000, 1, 1024)
    assert len(pcm) > 2 * rate
    assert dominant_hz(pcm[rate // 2 :], rate) == pytest.approx(440, abs=5)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_backchannel_tone_arrives_at_gstreamer_byte_exact(gst, transport):
    t = np.arange(8000) / 8000
    tone = encode_g711((np.sin(2 * np.pi * 1000 * t) * 16000).astype(np.int16), "pcmu")

    async def talk(session: CameraSession) -> None:
        assert session.backchannel is not None and session.backchannel.format.encoding == "PCMU"
        packetizer = G711Packetizer(0, ssrc=0xABCD, packet_ms=20)
        for packet in packetizer.push(tone):
            assert session.send_backchannel(packet)
            await asyncio.sleep(0.02)

    with gst() as (url, back):
        await play(ClientConfig(url, backchannel=True, transport=transport), seconds=0.5, during=talk)
        await asyncio.sleep(0.3)
        received = back.read_bytes()
    assert received == tone
    pcm = decode_g711(received, "pcmu").astype(float)
    assert dominant_hz(pcm, 8000) == pytest.approx(1000, abs=2)


MIN_FRAMES = 150  # of 10 s at 25 fps


@pytest.mark.parametrize(("video", "bframes", "parameter_sets", "audio_ms"), [
    ("h264", 2, "sdp", 40),  # x264enc High profile with B-frames, SPS/PPS only in the SDP
    ("h265", 2, "inband", 64),
])
async def test_gstreamer_b_frame_streams_are_captured_in_order_and_in_sync(tmp_path, video, bframes,
                                                                          parameter_sets, audio_ms):
    import av_drift_detector as avd

    from opticlink.record.capture import capture

    clip = tmp_path / "sync.mkv"
    avd.generate(str(clip), fps="25", duration=30, width=320, height=240, sample_rate=8000, audio_codec="pcm",
                 audio_offset=0.04, music=False)
    with gstreamer_server(tmp_path, video=video, audio="pcmu", clip=clip, bframes=bframes,
                          parameter_sets=parameter_sets, audio_ms=audio_ms) as (url, _):
        result = await capture(ClientConfig(url), 10, tmp_path / "cap.mkv")
    # 250 frames at real time; a loaded machine's live x265 encoder falls behind (193 seen in 9.4 s): what is
    # judged here is order and sync, over enough frames to judge them
    assert result.error is None and result.file.video_frames >= MIN_FRAMES, result
    # the timeline's own phase, not a 25 fps grid (frames 39/41 ms apart near half a slot round together)
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "cap.mkv"), "-enc_time_base:v", "1:1000",
                              "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0 and decoded.stderr.strip() == ""
    with av.open(str(tmp_path / "cap.mkv")) as container:
        shown = [p.pts for p in container.demux(video=0) if p.pts is not None]
    assert sorted(shown) != shown  # B-frames really were sent, and written in decode order
    report = avd.analyze(str(tmp_path / "cap.mkv"), capture="file")
    summary = report["summary"]
    assert summary["backward_jumps"] == 0 and summary["repeated_frames"] == 0, summary
    offsets = [f["drift_ms"] for f in report["frames"] if f["status"] == "ok" and f["time"] >= 1.0]
    assert len(offsets) >= MIN_FRAMES - 25 and max(abs(o - 40.0) for o in offsets) <= 3.0, summary
