"""Recordings read back and exported: frames across segments, files FFmpeg plays and av-drift-detector
measures at the clip's own offset, the command line and the HTTP route.

One recording made by the real service against the simulator (segments of 5 s) is shared by the tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import av
import av_drift_detector as avd
import httpx
import pytest

from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from opticlink.media import split_length_prefixed
from opticlink.record.export import NothingRecorded, export, parse_time
from opticlink.record.reader import parameter_sets, read_frames
from opticlink.record.segment import MOVFLAGS, annexb
from opticlink.sim.faults import Faults
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from tests.auth.helpers import credentials

pytestmark = pytest.mark.slow  # a module recording of two cameras (about 20 s) that most tests here read
EXPECTED_MS = 40.0  # the audio offset built into the test clip
RECORD_S = 16.0
OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")


@dataclasses.dataclass
class Recording:
    data_dir: Path
    root: Path
    segments: dict[str, list]  # camera: its segments


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    base = tmp_path_factory.mktemp("export")
    clip = base / "sync.mkv"
    avd.generate(str(clip), fps="25", duration=40, width=320, height=240, sample_rate=8000, audio_codec="pcm",
                 audio_offset=EXPECTED_MS / 1000, music=False)
    data_dir = base / "data"
    drift = camera("drift", clip=clip, bitrate=600_000, faults=Faults(audio_skew_ppm=300, jitter_ms=20, seed=5))
    hevc = camera("hevc", codec="h265", bframes=2, audio="pcma", width=320, height=180, bitrate=300_000)

    async def record() -> dict[str, list]:
        async with SimulatorServer([drift, hevc], port=0) as server:
            config = ServiceConfig(cameras=[CameraConfig(id="drift", url=server.url("drift")),
                                            CameraConfig(id="mute", url=server.url("drift"), record_audio=False),
                                            CameraConfig(id="hevc", url=server.url("hevc"))],
                                   data_dir=data_dir, database="file", record=True, segment_seconds=5.0)
            service = Service(config)
            await service.start()
            await asyncio.sleep(RECORD_S)
            await service.stop()
            segments = {c: service.recordings.segments(c) for c in ("drift", "mute", "hevc")}
            service.database.close()
            return segments

    return Recording(data_dir, data_dir / "recordings", asyncio.run(record()))


def _span(recording: Recording, camera: str = "drift") -> tuple[float, float]:
    segments = recording.segments[camera]
    return segments[0].start_wall, segments[-1].end_wall


def _probe(path: Path) -> dict[str, dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def _ffmpeg_errors(path: Path) -> str:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True,
                          text=True, timeout=60)
    return done.stderr.strip() + ("" if done.returncode == 0 else f" (exit {done.returncode})")


@pytest.mark.slow
def test_the_recording_spans_several_segments(recording):
    for name in ("drift", "mute", "hevc"):
        segments = recording.segments[name]
        assert len(segments) >= 3 and all(s.state == "done" for s in segments), name
    assert recording.segments["drift"][0].audio_codec == "pcmu"
    assert all(s.audio_codec is None for s in recording.segments["mute"])
    assert recording.segments["hevc"][0].video_codec == "h265" and recording.segments["hevc"][0].audio_codec == "pcma"


def test_reader_gives_every_frame_once_in_decode_order_from_a_keyframe_before_the_start(recording):
    first, _ = _span(recording)
    start, end = first + 2.5, first + 12.5  # from mid-GOP, across two segment boundaries
    frames = list(read_frames(recording.root, recording.segments["drift"], start, end))
    video = [f for f in frames if f.frame.kind == "video"]
    audio = [f for f in frames if f.frame.kind == "audio"]
    assert video[0].frame.keyframe and start - 1.1 <= video[0].wall <= start
    assert frames[0].frame.decode_us <= video[0].frame.decode_us  # audio sounding at the keyframe may lead it
    assert len({f.segment for f in frames}) >= 3 and {f.run for f in frames} == {1}
    decode = [f.frame.decode_us for f in frames]
    assert decode == sorted(decode)  # tracks interleaved by decode time
    for track in (video, audio):
        walls = [f.wall for f in track]
        assert walls == sorted(walls) and walls[-1] <= end
        assert walls[-1] >= end - 0.1
    # no dropped or repeated picture across segment boundaries: 25 fps, one frame each 40 ms
    steps = [b.frame.pts_us - a.frame.pts_us for a, b in itertools.pairwise(video)]
    assert all(38_000 <= s <= 42_000 for s in steps), sorted(steps)[:3] + sorted(steps)[-3:]
    assert len(video) == round((video[-1].frame.pts_us - video[0].frame.pts_us) / 40_000) + 1
    # the sound is sample after sample on the run's clock, across segments too
    for a, b in itertools.pairwise(audio):
        assert b.sample == a.sample + a.samples
        assert b.frame.pts_us == round(b.sample * 1e6 / 8000)
    # the first picture decodes from the parameter sets read from the file's avcC
    config = video[0].frame.config
    assert config.codec == "h264" and config.complete
    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for f in video[:5]:
        data = annexb(config.parameter_sets) + annexb(split_length_prefixed(f.frame.data))
        pictures += decoder.decode(av.Packet(data))
    pictures += decoder.decode(None)
    assert len(pictures) == 5 and (pictures[0].width, pictures[0].height) == (320, 240)


def test_reader_stops_at_the_end_and_reads_h265_with_b_frames(recording):
    first, _ = _span(recording, "hevc")
    frames = list(read_frames(recording.root, recording.segments["hevc"], first + 1.0, first + 7.0))
    video = [f.frame for f in frames if f.frame.kind == "video"]
    assert video[0].keyframe and video[0].config.codec == "h265" and len(video[0].config.parameter_sets) == 3
    assert any(v.pts_us != v.decode_us for v in video)  # reordered
    decoder = av.CodecContext.create("hevc", "r")
    count = 0
    for v in video:
        count += len(decoder.decode(av.Packet(annexb(v.config.parameter_sets) + annexb(split_length_prefixed(v.data)))))
    count += len(decoder.decode(None))
    assert count == len(video)
    audio = [f for f in frames if f.frame.kind == "audio"]
    assert audio and audio[0].frame.config.codec == "pcma"


def test_parameter_sets_from_an_hvcc_record():
    vps, sps, pps = b"\x40\x01\x0c", b"\x42\x01\x01\x01", b"\x44\x01\xc1"
    record = bytes([1]) + bytes(20) + bytes([0x0F, 3])
    for nal in (vps, sps, pps):
        record += bytes([0x80 | (nal[0] >> 1)]) + (1).to_bytes(2, "big") + len(nal).to_bytes(2, "big") + nal
    assert parameter_sets("h265", record) == (vps, sps, pps)
    assert parameter_sets("h264", b"\x00\x00\x00\x01\x67\x64\x00\x00\x00\x01\x68\xee") == (b"\x67\x64", b"\x68\xee")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mkv", "mp4"])
def test_exports_play_and_keep_the_recorded_sync(recording, tmp_path, kind):
    first, last = _span(recording)
    out = tmp_path / f"export.{kind}"
    seen: list[float] = []
    summary = export(recording.root, recording.segments["drift"], first + 0.5, last, out, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 10
    assert summary.start_wall <= first + 0.5 and summary.runs == 1 and summary.segments >= 3
    assert summary.video_frames >= 25 * (last - first - 1.6)
    assert _ffmpeg_errors(out) == ""
    streams = _probe(out)
    assert streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == ("aac" if kind == "mp4" else "pcm_s16le")
    result = avd.analyze(str(out), capture="file")["summary"]
    print(f"{kind}: av-drift-detector {result['mean_ms']:.2f} ms mean, {result['measured']}/{result['frames']} "
          f"frames, skew {result.get('skew_ppm', 0):.1f} ppm")
    assert result["measured"] >= 0.95 * summary.video_frames
    assert result["mean_ms"] == pytest.approx(EXPECTED_MS, abs=3.0)
    if kind == "mp4":
        head = out.read_bytes()[:64]
        assert head.find(b"moov") < 64 and head.find(b"mdat") < 0  # moov first: plays while it downloads


@pytest.mark.slow
def test_mov_export_copies_the_audio_as_recorded_and_h265_with_b_frames_exports(recording, tmp_path):
    first, last = _span(recording)
    out = tmp_path / "export.mov"
    summary = export(recording.root, recording.segments["drift"], first + 3, first + 8, out)
    assert summary.audio == "pcmu copied" and _ffmpeg_errors(out) == ""
    assert _probe(out)["audio"]["codec_name"] == "pcm_mulaw"
    assert avd.analyze(str(out), capture="file")["summary"]["mean_ms"] == pytest.approx(EXPECTED_MS, abs=3.0)
    first, last = _span(recording, "hevc")
    for kind, audio in (("mkv", "pcm_s16le"), ("mp4", "aac")):
        out = tmp_path / f"hevc.{kind}"
        summary = export(recording.root, recording.segments["hevc"], first + 1, last, out)
        streams = _probe(out)
        assert streams["video"]["codec_name"] == "hevc" and streams["audio"]["codec_name"] == audio
        assert _ffmpeg_errors(out) == "", kind
        assert summary.audio == ("pcm_s16le from pcma" if kind == "mkv" else "aac from pcma")


def _aac_segment(root: Path, segment, name: str):
    """A copy of a recorded segment with its G.711 sound in AAC, as a camera sending AAC would leave it
    (each packet at the sample its sound begins; the encoder's priming packet dropped)."""
    with av.open(str(root / segment.path)) as source, \
            av.open(str(root / name), "w", format="mov", options={"movflags": MOVFLAGS}) as out:
        video = out.add_stream_from_template(source.streams.video[0])
        audio = out.add_stream("aac", rate=8000, layout="mono")
        for packet in source.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                packet.stream = video
                out.mux(packet)
                continue
            for frame in packet.decode():
                frame.pts = packet.pts
                out.mux([p for p in audio.encode(frame) if p.pts >= 0])
        out.mux(audio.encode(None))
    return dataclasses.replace(segment, path=name, audio_codec="aac")


@pytest.mark.slow
def test_aac_recordings_export_copied_to_mkv_and_reencoded_to_mp4_in_sync(recording, tmp_path):
    segments = [_aac_segment(recording.root, s, f"aac-{s.id}.mov") for s in recording.segments["drift"]]
    frames = list(read_frames(recording.root, segments, segments[0].start_wall + 1, segments[0].start_wall + 2))
    config = next(f.frame.config for f in frames if f.frame.kind == "audio")
    assert config.codec == "aac" and config.sample_rate == 8000 and config.extra  # the AudioSpecificConfig
    for kind in ("mkv", "mp4"):
        out = tmp_path / f"aac.{kind}"
        summary = export(recording.root, segments, segments[0].start_wall + 1, segments[-1].end_wall, out)
        assert summary.audio == ("aac copied" if kind == "mkv" else "aac from aac")
        assert _probe(out)["audio"]["codec_name"] == "aac" and _ffmpeg_errors(out) == ""
        result = avd.analyze(str(out), capture="file")["summary"]
        print(f"aac {kind}: av-drift-detector {result['mean_ms']:.2f} ms mean, {result['measured']}/"
              f"{result['frames']} frames")
        assert result["mean_ms"] == pytest.approx(EXPECTED_MS, abs=3.0)


@pytest.mark.slow
def test_a_gap_between_runs_keeps_its_wall_length(recording, tmp_path):
    segments = recording.segments["drift"]
    # the camera was away for 3 s before the third segment: it is another run, 3 s later
    moved = segments[:2] + [dataclasses.replace(s, run=s.run + 1, start_wall=s.start_wall + 3, end_wall=s.end_wall + 3)
                            for s in segments[2:]]
    first, last = moved[0].start_wall, moved[-1].end_wall
    out = tmp_path / "gap.mp4"
    summary = export(recording.root, moved, first, last, out)
    # the gap runs from the end of what the file holds of the first run: its last audio may reach past the
    # third segment's first keyframe (the clip's 40 ms A/V offset and 20 ms of jitter; 58 ms once on CI)
    assert summary.runs == 2 and summary.gap_s == pytest.approx(3.0, abs=0.1)
    assert summary.duration_s == pytest.approx(last - summary.start_wall, abs=0.1)
    assert _ffmpeg_errors(out) == ""
    assert float(_probe(out)["audio"]["duration"]) == pytest.approx(summary.duration_s, abs=0.2)
    assert avd.analyze(str(out), capture="file")["summary"]["mean_ms"] == pytest.approx(EXPECTED_MS, abs=3.0)


@pytest.mark.slow
def test_a_recording_without_audio_exports_without_an_audio_stream(recording, tmp_path):
    first, last = _span(recording, "mute")
    for kind in ("mkv", "mp4"):
        out = tmp_path / f"mute.{kind}"
        summary = export(recording.root, recording.segments["mute"], first + 1, last, out)
        assert summary.audio is None and summary.video_frames > 100
        assert set(_probe(out)) == {"video"} and _ffmpeg_errors(out) == ""


def test_bad_requests_are_refused(recording, tmp_path):
    first, last = _span(recording)
    with pytest.raises(NothingRecorded):
        export(recording.root, recording.segments["drift"], first - 100, first - 50, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"\.mkv, \.mp4 or \.mov"):
        export(recording.root, recording.segments["drift"], first, last, tmp_path / "x.avi")
    assert not (tmp_path / "x.mp4").exists()
    assert parse_time("1700000000.5") == 1700000000.5
    assert parse_time("2023-11-14T22:13:20Z") == 1700000000.0
    assert parse_time("2023-11-14T23:13:20+01:00") == 1700000000.0
    local = datetime(2023, 11, 14, 22, 13, 20).astimezone().timestamp()
    assert parse_time("2023-11-14T22:13:20") == local
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([OPTICLINK, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_export_command(recording, tmp_path):
    config = tmp_path / "cameras.yaml"
    config.write_text(f"data_dir: {recording.data_dir}\ncameras:\n  - id: drift\n    url: rtsp://127.0.0.1:9/x\n")
    first, last = _span(recording)
    start = datetime.fromtimestamp(first + 1, UTC).isoformat().replace("+00:00", "Z")
    out = tmp_path / "cli.mp4"
    done = _run("export", str(config), "drift", "--start", start, "--end", f"{last:.3f}", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "exporting 100%" in done.stderr and "wrote" in done.stdout and "aac from pcmu" in done.stdout
    assert set(_probe(out)) == {"video", "audio"}
    done = _run("export", str(config), "door", "--last", "60", "-o", str(tmp_path / "door.mp4"))
    assert done.returncode == 1 and "no camera 'door'" in done.stderr
    done = _run("export", str(config), "drift", "--start", "1000", "--end", "2000", "-o", str(tmp_path / "old.mp4"))
    assert done.returncode == 1 and "nothing of drift was recorded" in done.stderr
    assert not (tmp_path / "old.mp4").exists()


async def test_export_over_http(recording):
    config = ServiceConfig(cameras=[CameraConfig(id="drift", url="rtsp://127.0.0.1:9/x")],
                           data_dir=recording.data_dir, database="file")
    service = Service(config)
    app = create_app(service)
    first, _ = _span(recording)
    query = {"start": f"{first + 1:.3f}", "end": f"{first + 6:.3f}", "format": "mp4"}
    base = "http://127.0.0.1"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as anonymous:
            refused = await anonymous.get("/api/cameras/drift/export", params=query)
            assert refused.status_code == 401
        admin = credentials(service, "boss", "admin")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base,
                                     headers=admin.bearer) as client:
            response = await client.get("/api/cameras/drift/export", params=query)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "video/mp4"
            assert "attachment" in response.headers["content-disposition"]
            assert response.content[4:8] == b"ftyp" and len(response.content) > 50_000
            rows = [r for r in service.database.audit(20) if r.action == "export"]
            assert rows and rows[0].user == "boss" and rows[0].camera == "drift" and rows[0].detail.endswith("mp4")
            for params, status in (({**query, "end": query["start"]}, 400),
                                   ({**query, "end": f"{first + 90_000:.0f}"}, 400),
                                   ({**query, "start": "soon"}, 400),
                                   ({**query, "format": "avi"}, 422),
                                   ({"start": "1000", "end": "2000"}, 404)):
                assert (await client.get("/api/cameras/drift/export", params=params)).status_code == status, params
            assert (await client.get("/api/cameras/door/export", params=query)).status_code == 404
        viewer = credentials(service, "vera", "viewer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base,
                                     headers=viewer.bearer) as client:
            refused = await client.get("/api/cameras/drift/export", params=query)
            assert refused.status_code == 403 and "viewers may not export" in refused.text
    finally:
        service.database.close()


def test_recordings_index_is_what_the_tests_read(recording):
    db = Database.open(recording.data_dir)
    try:
        assert [s.id for s in Recordings(db).segments("drift")] == [s.id for s in recording.segments["drift"]]
    finally:
        db.close()
