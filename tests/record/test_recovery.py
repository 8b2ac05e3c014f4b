"""Crash recovery on real fragmented QuickTime files: torn tails cut at fragment boundaries (FFmpeg
then reads every remaining file without a word), orphans and garbage finished, open gaps closed."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from opticlink.record.recovery import recover, whole_prefix
from opticlink.store.database import Database
from opticlink.store.recordings import Recordings

MOVFLAGS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000"}
SECONDS = 5
FPS = 25
RATE = 8000
START_WALL = 1_700_000_000.0
MEDIA_START = 120_000_000  # the segment's place in its run
FFMPEG = shutil.which("ffmpeg")


def make_mov(path: Path, *, video: bool = True, audio: bool = True, seconds: int = SECONDS) -> None:
    """A fragmented MOV as the recorder writes it: H.264 (a keyframe a second) first, µ-law second."""
    with av.open(str(path), "w", format="mov", options=MOVFLAGS) as out:
        v = out.add_stream("libx264", rate=FPS, options={"g": str(FPS), "preset": "ultrafast", "bf": "0"}) \
            if video else None
        if v is not None:
            v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"
        a = out.add_stream("pcm_mulaw", rate=RATE, layout="mono") if audio else None
        step = RATE // FPS
        for i in range(seconds * FPS):
            if v is not None:
                picture = np.zeros((96, 160, 3), dtype=np.uint8)
                picture[:, (i * 3) % 160] = 255
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
                frame.pts = i
                out.mux(v.encode(frame))
            if a is not None:
                t = np.arange(i * step, (i + 1) * step) / RATE
                samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
                sound = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                sound.sample_rate = RATE
                sound.pts = i * step
                out.mux(a.encode(sound))
        if v is not None:
            out.mux(v.encode(None))
        if a is not None:
            out.mux(a.encode(None))


def boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of the top-level boxes of a whole file (32-bit sizes: test files are small)."""
    found = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        found.append((kind, offset, offset + size))
        offset += size
    return found


def packet_ends(path: Path) -> list[tuple[int, int]]:
    """(byte end, media end in µs of file time) of every packet, by the demuxer's own positions."""
    with av.open(str(path)) as container:
        return [(p.pos + p.size, int((p.pts + p.duration) * p.time_base * 1_000_000))
                for p in container.demux() if p.size and p.pos is not None]


def truth_at(ends: list[tuple[int, int]], cut: int) -> int:
    """The media end of every packet whose bytes lie wholly before `cut`: what was on disk."""
    return max((media for byte, media in ends if byte <= cut), default=0)


def ffmpeg_errors(path: Path) -> str:
    run = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mov") / "whole.mov"
    make_mov(path)
    return path


@pytest.fixture
def recordings() -> Recordings:
    return Recordings(Database.open(None))


def place(root: Path, data: bytes, name: str = "1700000000000-r1.mov", camera: str = "door") -> str:
    relative = f"{camera}/2023-11-14/{name}"
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return relative


def writing_row(recordings: Recordings, relative: str, camera: str = "door", *, video: bool = True,
                audio: bool = True) -> int:
    return recordings.add_segment(camera, 1, relative, start_wall=START_WALL, media_start_us=MEDIA_START,
                                  wall_source="server", video_codec="h264" if video else None,
                                  audio_codec="pcmu" if audio else None)


def test_whole_file_is_adopted(tmp_path, whole, recordings):
    relative = place(tmp_path, whole.read_bytes())
    segment_id = writing_row(recordings, relative)
    report = recover(tmp_path, recordings)
    assert (report.adopted, report.repaired, report.bytes_truncated) == (1, 0, 0)
    row = recordings.segment(segment_id)
    assert row is not None and row.state == "done"
    assert row.frames == SECONDS * FPS
    assert row.media_end_us == MEDIA_START + SECONDS * 1_000_000
    assert row.end_wall == pytest.approx(START_WALL + SECONDS)
    assert row.keyframes == tuple(MEDIA_START + s * 1_000_000 for s in range(SECONDS))
    assert row.bytes == whole.stat().st_size  # the clean close's mfra is kept
    assert ffmpeg_errors(tmp_path / relative) == ""


def cut_points(data: bytes) -> list[int]:
    """Offsets inside ftyp and moov, inside and at the edges of every moof and mdat, and random ones."""
    points = set()
    for _kind, start, end in boxes(data):
        points.update({start + 3, start + 9, (start + end) // 2, end - 1, end})
    rng = random.Random(12)
    points.update(rng.randrange(1, len(data)) for _ in range(8))
    return sorted(p for p in points if 0 < p < len(data))


@pytest.mark.slow
def test_cut_anywhere_is_repaired_to_its_last_whole_fragment(tmp_path, whole):
    data = whole.read_bytes()
    layout = boxes(data)
    first_fragment_end = next(end for kind, _, end in layout if kind == b"mdat")
    true_end = SECONDS * 1_000_000
    ends = packet_ends(whole)
    checked: set[int] = set()  # cuts within one fragment repair to the same file: FFmpeg reads each once
    for n, cut in enumerate(cut_points(data)):
        root = tmp_path / f"cut{n}"
        recordings = Recordings(Database.open(None))
        relative = place(root, data[:cut])
        segment_id = writing_row(recordings, relative)
        report = recover(root, recordings)
        row = recordings.segment(segment_id)
        if cut < first_fragment_end:
            assert row is None, cut
            assert report.removed == 1 and not (root / relative).exists(), cut
        else:
            assert row is not None and row.state == "done", cut
            assert report.repaired + report.adopted == 1, cut
            end = row.media_end_us - MEDIA_START
            truth = truth_at(ends, cut)
            assert truth - 2_000_000 <= end <= min(truth, true_end), (cut, end, truth)
            assert row.end_wall == pytest.approx(START_WALL + end / 1e6)
            assert row.bytes == (root / relative).stat().st_size == cut - report.bytes_truncated
            assert row.frames > 0 and row.keyframes and row.keyframes[0] == MEDIA_START
            if row.bytes not in checked:
                assert ffmpeg_errors(root / relative) == "", cut
                checked.add(row.bytes)
            assert whole_prefix(root / relative) == row.bytes  # a fixed point: nothing more to cut
        assert recordings.garbage() == []


def test_zeros_after_the_last_fragment_are_cut(tmp_path, whole, recordings):
    data = whole.read_bytes()
    second_mdat_end = [end for kind, _, end in boxes(data) if kind == b"mdat"][1]
    relative = place(tmp_path, data[:second_mdat_end] + bytes(4096))  # what a crash leaves on some filesystems
    segment_id = writing_row(recordings, relative)
    report = recover(tmp_path, recordings)
    assert report.repaired == 1 and report.bytes_truncated == 4096
    row = recordings.segment(segment_id)
    assert row is not None and row.bytes == second_mdat_end
    assert ffmpeg_errors(tmp_path / relative) == ""


def test_audio_only_segment_counts_audio_packets(tmp_path, recordings):
    source = tmp_path / "audio.mov"
    make_mov(source, video=False, seconds=3)
    data = source.read_bytes()
    root = tmp_path / "root"
    last_mdat_start = [start for kind, start, _ in boxes(data) if kind == b"mdat"][-1]
    relative = place(root, data[:last_mdat_start + 100])
    segment_id = writing_row(recordings, relative, video=False)
    recover(root, recordings)
    row = recordings.segment(segment_id)
    assert row is not None and row.state == "done" and row.frames > 0 and row.keyframes == ()
    assert 1_000_000 <= row.media_end_us - MEDIA_START < 3_000_000
    assert ffmpeg_errors(root / relative) == ""


def test_no_fragment_and_missing_file(tmp_path, whole, recordings):
    data = whole.read_bytes()
    moov_end = next(end for kind, _, end in boxes(data) if kind == b"moov")
    header_only = writing_row(recordings, place(tmp_path, data[:moov_end], "1-r1.mov"))
    empty = writing_row(recordings, place(tmp_path, b"", "2-r1.mov"))
    missing = writing_row(recordings, "door/2023-11-14/3-r1.mov")
    report = recover(tmp_path, recordings)
    assert (report.removed, report.dropped) == (2, 1)
    assert all(recordings.segment(i) is None for i in (header_only, empty, missing))
    assert recordings.garbage() == []
    assert not any(tmp_path.rglob("*.mov"))
    assert not (tmp_path / "door").exists()  # emptied folders go too


def test_orphans_go_and_nothing_outside_the_root_is_touched(tmp_path, whole, recordings):
    root = tmp_path / "recordings"
    kept = place(root, whole.read_bytes(), "1-r1.mov")
    recordings.add_segment("door", 1, kept, start_wall=START_WALL, media_start_us=0, wall_source="server",
                           video_codec="h264", audio_codec="pcmu")
    orphan = place(root, whole.read_bytes()[:5000], "2-r1.mov")
    stale = place(root, b"junk", "3-r1.mov", camera="gate")
    notes = root / "door" / "notes.txt"
    notes.write_text("not a segment")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.mov").write_bytes(b"keep me")
    (root / "door" / "link.mov").symlink_to(outside / "precious.mov")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    report = recover(root, recordings)
    assert report.orphans == 2
    assert not (root / orphan).exists() and not (root / stale).exists()
    assert (root / kept).exists() and notes.exists()
    assert (outside / "precious.mov").read_bytes() == b"keep me"
    assert (root / "door" / "link.mov").is_symlink() and (root / "linked").is_symlink()
    assert recordings.garbage() == []
    assert [s.path for s in recordings.segments()] == [kept]


def test_garbage_is_finished_after_a_crash_between_retire_and_unlink(tmp_path, whole, recordings):
    root = tmp_path / "recordings"
    relative = place(root, whole.read_bytes())
    segment_id = recordings.add_segment("door", 1, relative, start_wall=START_WALL, media_start_us=0,
                                        wall_source="server", video_codec="h264", audio_codec="pcmu")
    recordings.update_segment(segment_id, end_wall=START_WALL + 5, media_end_us=5_000_000, bytes=1, frames=1,
                              keyframes=[0], done=True)
    assert recordings.retire([segment_id]) == [relative]  # ... and the process dies here
    recordings.add_garbage("door/2023-11-14/already-gone.mov")
    recordings.add_garbage("../outside.mov")  # never ours: forgotten, not followed
    (tmp_path / "outside.mov").write_bytes(b"x")
    report = recover(root, recordings)
    assert report.garbage == 3
    assert not (root / relative).exists()
    assert (tmp_path / "outside.mov").exists()
    assert recordings.garbage() == [] and recordings.segments() == []


def test_open_gaps_close_at_the_cameras_last_recorded_time(tmp_path, whole, recordings):
    relative = place(tmp_path, whole.read_bytes())
    segment_id = recordings.add_segment("door", 1, relative, start_wall=START_WALL, media_start_us=0,
                                        wall_source="server", video_codec="h264", audio_codec="pcmu")
    recordings.update_segment(segment_id, end_wall=START_WALL + 60, media_end_us=60_000_000, bytes=1, frames=1,
                              keyframes=[0], done=True)
    before = recordings.open_gap("door", START_WALL - 100, "offline")
    after = recordings.open_gap("door", START_WALL + 90, "offline")
    closed = recordings.open_gap("door", START_WALL - 500, "offline")
    recordings.close_gap(closed, START_WALL - 400)
    elsewhere = recordings.open_gap("gate", START_WALL, "offline")
    report = recover(tmp_path, recordings)
    ends = {g.id: g.end_wall for g in recordings.gaps()}
    assert ends == {before: START_WALL + 60, after: START_WALL + 90, closed: START_WALL - 400,
                    elsewhere: START_WALL}
    assert report.gaps_closed == 3 and report.last_wall == {"door": START_WALL + 60}


def test_many_open_gaps_are_closed_a_bounded_batch_at_a_time(tmp_path, recordings, monkeypatch):
    from opticlink.record import recovery

    monkeypatch.setattr(recovery, "GAPS_PER_READ", 7)
    read: list[int] = []
    original = recordings.gaps
    monkeypatch.setattr(recordings, "gaps", lambda *a, **k: read.append(k.get("limit")) or original(*a, **k))
    for i in range(30):
        recordings.open_gap(f"cam{i % 3}", START_WALL + i, "offline")
    report = recover(tmp_path, recordings)
    assert report.gaps_closed == 30 and all(g.end_wall is not None for g in original())
    assert set(read) == {7} and len(read) == 6  # five batches of at most 7, then a read that finds none


def test_recovery_is_idempotent(tmp_path, whole, recordings):
    data = whole.read_bytes()
    relative = place(tmp_path, data[:len(data) * 2 // 3])
    writing_row(recordings, relative)
    place(tmp_path, b"orphan", "9-r1.mov")
    first = recover(tmp_path, recordings)
    assert first.repaired == 1 and first.orphans == 1 and first.bytes_truncated > 0
    size = (tmp_path / relative).stat().st_size
    second = recover(tmp_path, recordings)
    assert (second.repaired, second.adopted, second.removed, second.orphans, second.garbage) == (0, 0, 0, 0, 0)
    assert (tmp_path / relative).stat().st_size == size


def test_box_headers_64_bit_sizes_and_size_zero(tmp_path):
    def box(kind: bytes, body: bytes, large: bool = False) -> bytes:
        if large:
            return struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body
        return struct.pack(">I4s", 8 + len(body), kind) + body

    head = box(b"ftyp", b"isom" * 3) + box(b"moov", b"\0" * 20)
    pair = box(b"moof", b"\0" * 16) + box(b"mdat", b"\1" * 40, large=True)
    path = tmp_path / "boxes.mov"
    path.write_bytes(head + pair + pair[:30])
    assert whole_prefix(path) == len(head + pair)
    path.write_bytes(head + pair + box(b"moof", b"\0" * 16) + struct.pack(">I4s", 0, b"mdat") + b"\1" * 40)
    assert whole_prefix(path) == len(head + pair)  # size 0 cannot be told from a cut: not kept
    path.write_bytes(box(b"moov", b"") + pair)
    assert whole_prefix(path) == 0  # no ftyp first
    path.write_bytes(head + box(b"mdat", b"\1" * 8) + pair)
    assert whole_prefix(path) == len(head + box(b"mdat", b"\1" * 8) + pair)  # an mdat with no moof is skipped
