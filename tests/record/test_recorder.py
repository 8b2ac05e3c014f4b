"""The recorder as the service runs it: real RTSP from the simulator, real files, FFmpeg as the judge."""

import asyncio
import itertools
import json
import os
import random
import signal
import sys
import time

import av_drift_detector as avd
import pytest

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from opticlink.live.feed import Viewer
from opticlink.media import AudioConfig, MediaFrame, VideoConfig
from opticlink.record.recorder import Recorder
from opticlink.record.segment import SegmentWriter
from opticlink.sim.faults import Faults
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer
from opticlink.store import Database
from opticlink.store.recordings import Recordings

OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")
EXPECTED_MS = 40.0  # the audio offset built into the test clip


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


async def decode_errors(path) -> str:
    code, _, err = await run("ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-")
    return err.strip() if code == 0 else f"exit {code}: {err}"


async def streams(path) -> dict[str, dict]:
    _, out, _ = await run("ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path))
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def service_for(url: str, tmp_path, **camera: object) -> Service:
    config = ServiceConfig(cameras=[CameraConfig(id="cam", url=url, talkback=False, **camera)], data_dir=tmp_path,
                           database="file", record=True, segment_seconds=3.0)
    return Service(config)


@pytest.mark.slow
async def test_recordings_are_segments_ffmpeg_reads_with_the_camera_s_own_audio(tmp_path):
    spec = camera("cam", width=320, height=180, bitrate=300_000,
                  faults=Faults(audio_skew_ppm=300, jitter_ms=30, seed=3))
    async with SimulatorServer([spec], port=0) as server:
        service = service_for(server.url("cam"), tmp_path)
        await service.start()
        await asyncio.sleep(8)
        await service.stop()
    segments = service.recordings.segments("cam")
    assert len(segments) >= 2 and all(s.state == "done" for s in segments)
    assert {s.run for s in segments} == {segments[0].run}  # one unbroken run
    for before, after in itertools.pairwise(segments):
        assert after.media_start_us == before.media_end_us  # media time runs on across files
        assert after.start_wall == before.end_wall
    for segment in segments:
        path = tmp_path / "recordings" / segment.path
        assert await decode_errors(path) == ""
        found = await streams(path)
        assert found["video"]["codec_name"] == "h264" and found["audio"]["codec_name"] == "pcm_mulaw"  # as sent
        assert segment.bytes == path.stat().st_size
        assert segment.keyframes and segment.keyframes[0] == segment.media_start_us
    stats = service.cameras["cam"].recorder.stats
    assert stats.dropped == 0 and stats.writes <= 4 * 8 + 10  # about one write a GOP (1 s) or a flush


@pytest.mark.slow
async def test_record_audio_false_gives_silent_files_while_live_audio_plays(tmp_path):
    spec = camera("cam", width=320, height=180, bitrate=300_000)
    async with SimulatorServer([spec], port=0) as server:
        service = service_for(server.url("cam"), tmp_path, record_audio=False)
        await service.start()
        viewer = Viewer("v")
        service.cameras["cam"].live.attach(viewer, 0.0)
        await asyncio.sleep(5)
        heard = sum(m.audio for m in viewer._queue)
        await service.stop()
    segments = service.recordings.segments("cam")
    assert segments and all(s.audio_codec is None for s in segments)
    for segment in segments:
        path = tmp_path / "recordings" / segment.path
        assert set(await streams(path)) == {"video"} and await decode_errors(path) == ""
    assert heard >= 50  # live viewers still get the camera's sound (the unread queue keeps the last 2 s)


@pytest.mark.slow
async def test_a_camera_offline_for_10_s_shows_as_a_gap_with_its_cause(tmp_path):
    spec = camera("cam", width=320, height=180, bitrate=300_000)
    server = SimulatorServer([spec], port=0)
    await server.start()
    port = server.port
    service = service_for(server.url("cam"), tmp_path)
    await service.start()
    try:
        await asyncio.sleep(4)
        await server.close()
        gone = time.time()
        await asyncio.sleep(10)
        server = SimulatorServer([spec], port=port)
        await server.start()
        back = time.time()
        await asyncio.sleep(5)
    finally:
        await service.stop()
        await server.close()
    gaps = service.recordings.gaps("cam")
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.cause.startswith("camera offline") and gap.end_wall is not None
    assert abs(gap.start_wall - gone) < 2.5 and abs(gap.end_wall - back) < 3.0
    runs = {s.run for s in service.recordings.segments("cam")}
    assert len(runs) == 2  # recording resumed by itself, as a new run


@pytest.mark.slow
async def test_a_camera_that_drops_the_connection_is_recorded_on_after_it_reconnects(tmp_path):
    # back within a second, its RTP times begun anew: the muxer once refused the next frames (times
    # going back) and 10 s of every reconnection were lost as "recorder error"
    async with SimulatorServer([camera("cam", width=320, height=180, bitrate=300_000)], port=0) as server:
        service = service_for(server.url("cam"), tmp_path)
        await service.start()
        try:
            await asyncio.sleep(4)
            for _ in range(2):
                session = server.latest_session("cam")
                assert session is not None
                session.connection.abort()
                await asyncio.sleep(4)
            await asyncio.sleep(2)
        finally:
            await service.stop()
    recorder = service.cameras["cam"].recorder
    assert recorder is not None and recorder.stats.error is None
    assert [g.cause for g in service.recordings.gaps("cam")] == []
    segments = sorted(service.recordings.segments("cam"), key=lambda s: s.start_wall)
    assert len({s.run for s in segments}) == 3  # a run per connection
    holes = [b.start_wall - a.end_wall for a, b in itertools.pairwise(segments)]
    assert max(holes) < 1.5, holes  # only the reconnections' own time is missing
    for segment in segments:
        assert await decode_errors(tmp_path / "recordings" / segment.path) == ""


@pytest.mark.slow
async def test_kill_9_loses_at_most_2_s_and_every_segment_decodes_after_restart(tmp_path):
    spec = camera("cam", width=320, height=180, bitrate=300_000, faults=Faults(jitter_ms=20, seed=7))
    async with SimulatorServer([spec], port=0) as server:
        config = tmp_path / "cameras.yaml"
        config.write_text(f"data_dir: {tmp_path}\nsegment_seconds: 3\ncameras:\n"
                          f"  - id: cam\n    url: {server.url('cam')}\n    talkback: false\n")
        proc = await asyncio.create_subprocess_exec(OPTICLINK, "serve", str(config), "--port", "0",
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        # killed at a random moment once it records (how long that takes depends on how busy the machine is)
        began = time.time()
        while not any(p.stat().st_size for p in (tmp_path / "recordings").rglob("*.mov")):
            assert time.time() - began < 60, "the service did not start recording within 60 s"
            await asyncio.sleep(0.2)
        await asyncio.sleep(random.uniform(3.0, 6.0))
        killed = time.time()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    database = Database.open(tmp_path)
    recordings = Recordings(database)
    assert recordings.segments("cam", state="writing")  # the crash left one half written
    from opticlink.record.recovery import recover

    recover(tmp_path / "recordings", recordings)
    segments = recordings.segments("cam")
    assert segments and all(s.state == "done" for s in segments)
    lost = killed - max(s.end_wall for s in segments)
    assert lost <= 2.0, f"{lost:.2f} s lost"
    for segment in segments:
        path = tmp_path / "recordings" / segment.path
        assert await decode_errors(path) == ""
        assert segment.bytes == path.stat().st_size
    files = sorted(p.relative_to(tmp_path / "recordings").as_posix() for p in (tmp_path / "recordings").rglob("*.mov"))
    assert files == sorted(s.path for s in segments)  # nothing half indexed, no orphan
    database.close()


def _frame(kind: str, ms: float, key: bool = False, *, rtp: int = 0, size: int = 160) -> MediaFrame:
    if kind == "video":
        return MediaFrame(0, "video", "h264", round(ms * 1000), 40_000, key, bytes(size), VIDEO)
    return MediaFrame(1, "audio", "pcmu", round(ms * 1000), 20_000, True, b"\x7f" * size, AUDIO, rtp_timestamp=rtp,
                      ssrc=5)


AUDIO = AudioConfig("pcmu", 8000)
VIDEO = VideoConfig("h264", (bytes.fromhex("6742c01e95a0a0fd01"), bytes.fromhex("68ce3c80")))


def test_a_hole_in_the_camera_s_audio_is_filled_with_silence_of_its_exact_length(tmp_path, monkeypatch):
    """Lost audio packets leave the sample clock where the camera's timestamps put it."""
    database = Database.open(tmp_path)
    recordings = Recordings(database)
    from opticlink.hub import FrameBus

    subscription = FrameBus("cam").subscribe("recorder", policy="gaps")
    recorder = Recorder("cam", tmp_path / "rec", recordings, subscription, server_wall=lambda pts: 1e9 + pts / 1e6,
                        why_silent=lambda: "camera offline")
    written: list[tuple[int, int]] = []
    silences: list[tuple[int, int]] = []
    monkeypatch.setattr(SegmentWriter, "__init__", lambda self, path, keyframe, audio: _fake_writer(self, keyframe,
                                                                                                     audio))
    monkeypatch.setattr(SegmentWriter, "write_audio", lambda self, data, sample, n: written.append((sample, n)))
    monkeypatch.setattr(SegmentWriter, "write_video", lambda self, frame, pts, dts: None)
    monkeypatch.setattr(SegmentWriter, "write_silence",
                        lambda self, sample, n: silences.append((sample, n)) or True)
    monkeypatch.setattr(SegmentWriter, "flush", lambda self: None)
    frames = [_frame("video", 0, True)]
    for i in range(80):  # past the second a run's start is held
        if i not in (5, 6):  # two packets lost
            frames.append(_frame("audio", i * 20, rtp=1000 + i * 160))
    recorder.process(frames, 10.0)
    recorder.process([], 11.0)
    assert silences == [(800, 320)]
    samples = [s for s, _ in written]
    assert samples[:5] == [0, 160, 320, 480, 640] and samples[5] == 1120
    database.close()


def _fake_writer(self, keyframe, audio) -> None:
    from opticlink.record.segment import SegmentStats

    self.video_config = keyframe.config if keyframe is not None else None
    self.audio_config = audio
    self.stats = SegmentStats()
    self.file = type("F", (), {"writes": 0, "written": 0})()


def replayed_frames(seconds: float, faults: Faults, **spec: object) -> list[tuple[float, MediaFrame]]:
    """(arrival, frame) of a simulated camera through the network model and the sync engine."""
    from opticlink.sim.replay import record
    from opticlink.sync import SyncEngine

    cam = camera("c", width=320, height=180, bitrate=300_000, **spec)
    rec = record(faults, seconds, ordered=True, video=cam.video, audio=cam.audio, keep_data=True)
    engine = SyncEngine(rec.tracks, epoch=0.0)
    out = []
    for event in rec.events:
        if event[0] == "unit":
            frame = engine.push_unit(event[1], event[2], event[3])
            if frame is not None:
                out.append((event[3], frame))
        else:
            engine.push_sender_report(event[1])
    return out


def drive(recorder: Recorder, frames: list[tuple[float, MediaFrame]], step: float = 0.2) -> None:
    """Hand frames to the recorder in batches, as its asyncio adapter does."""
    batch: list[MediaFrame] = []
    due = frames[0][0] + step
    for arrival, frame in frames:
        if arrival >= due:
            recorder.process(batch, arrival)
            batch, due = [], arrival + step
        batch.append(frame)
    recorder.process(batch, due)
    recorder.close()


def test_a_full_disk_stops_recording_with_a_gap_and_it_resumes_when_space_returns(tmp_path, monkeypatch):
    from opticlink.hub import FrameBus
    from opticlink.record import recorder as recorder_module
    from opticlink.record.segment import BatchedFile

    database = Database.open(tmp_path)
    recordings = Recordings(database)
    subscription = FrameBus("cam").subscribe("recorder", policy="gaps")
    recorder = Recorder("cam", tmp_path / "rec", recordings, subscription, segment_s=4.0,
                        server_wall=lambda pts: 1.8e9 + pts / 1e6)
    frames = replayed_frames(30, Faults(seed=2))
    real_flush = BatchedFile.flush
    full = {"from": 8.0, "until": 14.0, "now": 0.0}

    def flush(self) -> None:
        if full["from"] <= full["now"] < full["until"] and self._pending:
            raise OSError(28, "No space left on device")
        real_flush(self)

    monkeypatch.setattr(BatchedFile, "flush", flush)
    monkeypatch.setattr(recorder_module, "DISK_RETRY_S", 3.0)
    original = recorder.process

    def process(batch, now, overflow=None):
        full["now"] = now
        original(batch, now, overflow)

    recorder.process = process  # type: ignore[method-assign]
    drive(recorder, frames)
    gaps = recordings.gaps("cam")
    assert [g.cause for g in gaps] == ["disk full"] and "No space left" in (gaps[0].detail or "")
    assert gaps[0].end_wall is not None  # closed when recording resumed
    segments = recordings.segments("cam")
    assert any(s.start_wall > gaps[0].end_wall - 0.01 for s in segments)  # it resumed by itself
    assert segments[-1].end_wall - segments[0].start_wall > 25
    from opticlink.record.recovery import recover

    recover(tmp_path / "rec", recordings)  # the segment the full disk cut is repaired as after a crash
    for segment in recordings.segments("cam"):
        assert segment.state == "done"
        assert asyncio.run(decode_errors(tmp_path / "rec" / segment.path)) == ""
    database.close()


@pytest.fixture(scope="module")
def drift_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "sync.mkv"
    # longer than the minute recorded: a clip that starts over would be read as a 40 s jump
    avd.generate(str(path), fps="25", duration=66, width=320, height=240, sample_rate=8000, audio_codec="pcm",
                 audio_offset=EXPECTED_MS / 1000, music=False)
    return path


@pytest.mark.slow
def test_a_minute_of_a_skewed_jittery_camera_exports_in_sync_across_segment_boundaries(drift_clip, tmp_path):
    """60 s recorded in 15 s segments from a camera whose audio clock runs 300 ppm fast, through 40 ms
    of jitter; exported whole to .mkv and .mp4, av-drift-detector finds the clip's own offset in both,
    and not a frame dropped or repeated where one segment ends and the next begins."""
    from opticlink.hub import FrameBus
    from opticlink.record.export import export

    database = Database.open(tmp_path)
    recordings = Recordings(database)
    recorder = Recorder("cam", tmp_path / "rec", recordings, FrameBus("cam").subscribe("r", policy="gaps"),
                        segment_s=15.0, server_wall=lambda pts: 1.8e9 + pts / 1e6)
    frames = replayed_frames(61, Faults(audio_skew_ppm=300, jitter_ms=40, seed=5), clip=drift_clip)
    drive(recorder, frames)
    segments = recordings.segments("cam")
    assert len(segments) == 5 and len({s.run for s in segments}) == 1  # 4 x 15 s and the last second
    for kind in ("mkv", "mp4"):
        out = tmp_path / f"all.{kind}"
        export(tmp_path / "rec", segments, segments[0].start_wall, segments[-1].end_wall, out)
        assert asyncio.run(decode_errors(out)) == ""
        summary = avd.analyze(str(out), capture="file")["summary"]
        assert summary["measured"] >= 0.95 * sum(s.frames for s in segments)
        assert summary["mean_ms"] == pytest.approx(EXPECTED_MS, abs=3.0), kind
        assert summary["dropped_frames"] == 0 and summary["repeated_frames"] == 0 and summary["backward_jumps"] == 0
    database.close()


async def test_an_exported_mp4_plays_with_sound_in_chromium_s_own_video_element(tmp_path):
    """What a user does with an export: open it in a browser. Chromium's `<video>` (no MSE, no
    player of ours) decodes its picture and its AAC sound."""
    import functools
    import http.server
    import threading

    from playwright.async_api import async_playwright

    from opticlink.hub import FrameBus
    from opticlink.live.chromium import launch
    from opticlink.record.export import export

    database = Database.open(tmp_path)
    recordings = Recordings(database)
    recorder = Recorder("cam", tmp_path / "rec", recordings, FrameBus("cam").subscribe("r", policy="gaps"),
                        segment_s=4.0, server_wall=lambda pts: 1.8e9 + pts / 1e6)
    drive(recorder, replayed_frames(9, Faults(seed=4)))
    segments = recordings.segments("cam")
    (tmp_path / "www").mkdir()
    export(tmp_path / "rec", segments, segments[0].start_wall, segments[-1].end_wall, tmp_path / "www" / "e.mp4")
    database.close()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with async_playwright() as pw:
            browser = await launch(pw)
            page = await browser.new_page()
            await page.set_content(f'<video id="v" src="http://127.0.0.1:{server.server_port}/e.mp4" autoplay>')
            await page.wait_for_function("document.getElementById('v').currentTime > 2", timeout=20_000)
            played = await page.evaluate("""() => { const v = document.getElementById('v');
                return {audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount,
                        width: v.videoWidth, duration: v.duration, error: v.error && v.error.message}; }""")
            await browser.close()
    finally:
        server.shutdown()
    assert played["error"] is None and played["width"] == 320
    assert played["audio"] > 0 and played["video"] > 0  # it has sound, and Chromium decodes it
    assert 7 < played["duration"] < 10


def test_record_audio_switched_at_runtime_takes_effect_at_the_next_keyframe(tmp_path):
    from opticlink.hub import FrameBus

    database = Database.open(tmp_path)
    recordings = Recordings(database)
    keep = {"audio": True}
    recorder = Recorder("cam", tmp_path / "rec", recordings, FrameBus("cam").subscribe("r", policy="gaps"),
                        segment_s=60.0, server_wall=lambda pts: 1.8e9 + pts / 1e6,
                        record_audio=lambda: keep["audio"])
    frames = replayed_frames(12, Faults(seed=6))
    first, second = [f for f in frames if f[0] < 4.5], [f for f in frames if 4.5 <= f[0] < 8.5]
    third = [f for f in frames if f[0] >= 8.5]
    drive_some = [(first, True), (second, False), (third, True)]
    for part, audio in drive_some:
        keep["audio"] = audio
        for arrival, frame in part:
            recorder.process([frame], arrival)
    recorder.close()
    segments = recordings.segments("cam")
    assert [s.audio_codec for s in segments] == ["pcmu", None, "pcmu"]
    assert len({s.run for s in segments}) == 1 and not recordings.gaps("cam")  # one run, nothing lost
    for segment in segments:
        assert asyncio.run(decode_errors(tmp_path / "rec" / segment.path)) == ""
    database.close()
