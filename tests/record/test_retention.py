"""Retention: oldest first by age, per-camera size, total size and free-space floor; the segment being
written is never deleted; files, rows and garbage all go; the batched applier matches one big plan."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from opticlink.record.retention import GB, CameraLimits, Candidate, DiskUsage, Retention, plan
from opticlink.store.database import Database
from opticlink.store.recordings import Recordings

NOW = 1_700_000_000.0
DAY = 86_400.0
MB = 1_000_000


@pytest.fixture
def recordings() -> Recordings:
    return Recordings(Database.open(None))


def segment(root: Path, recordings: Recordings, camera: str, start: float, size: int, *, minutes: float = 1,
            writing: bool = False) -> str:
    """A segment row and its file (`size` bytes, sparse: no disk needed)."""
    relative = f"{camera}/day/{int(start * 1000)}-r1.mov"
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)
    segment_id = recordings.add_segment(camera, 1, relative, start_wall=start, media_start_us=0,
                                        wall_source="server", video_codec="h264", audio_codec="pcmu")
    recordings.update_segment(segment_id, end_wall=start + minutes * 60, media_end_us=int(minutes * 60e6),
                              bytes=size, frames=1, keyframes=[0], done=not writing)
    return relative


def disk(root: Path, capacity: int):
    """A filesystem of `capacity` bytes holding only the files under root (their apparent sizes)."""
    def usage(_path: Path) -> DiskUsage:
        used = sum(p.stat().st_size for p in root.rglob("*.mov"))
        return DiskUsage(capacity, used, capacity - used)
    return usage


def remaining(recordings: Recordings) -> list[str]:
    return [s.path for s in recordings.segments()]


def check_deleted(root: Path, recordings: Recordings, deleted: list[str], expected: list[str]) -> None:
    assert sorted(deleted) == sorted(expected)
    assert not any((root / p).exists() for p in deleted)
    assert not set(deleted) & set(remaining(recordings))
    assert recordings.garbage() == []


def test_by_age_keeps_the_writing_segment(tmp_path, recordings):
    old = [segment(tmp_path, recordings, "door", NOW - d * DAY, MB) for d in (5, 3, 2)]
    young = segment(tmp_path, recordings, "door", NOW - 0.5 * DAY, MB)
    stuck = segment(tmp_path, recordings, "door", NOW - 9 * DAY, MB, writing=True)  # being written: never
    other = segment(tmp_path, recordings, "gate", NOW - 30 * DAY, MB)  # no limit of its own
    deleted = Retention(tmp_path, recordings, {"door": (1.5, None)}).run_once(NOW)
    check_deleted(tmp_path, recordings, deleted, old)
    assert sorted(remaining(recordings)) == sorted([young, stuck, other])


def test_a_segment_straddling_the_horizon_stays(tmp_path, recordings):
    straddling = segment(tmp_path, recordings, "door", NOW - DAY - 30, MB)  # ends 30 s after the horizon
    assert Retention(tmp_path, recordings, {"door": (1, None)}).run_once(NOW) == []
    assert remaining(recordings) == [straddling]


def test_by_camera_size_oldest_first(tmp_path, recordings):
    door = [segment(tmp_path, recordings, "door", NOW - 3600 + i * 60, 100 * MB) for i in range(10)]
    gate = [segment(tmp_path, recordings, "gate", NOW - 7200 + i * 60, 100 * MB) for i in range(10)]
    writing = segment(tmp_path, recordings, "door", NOW, 50 * MB, writing=True)
    retention = Retention(tmp_path, recordings, {"door": (None, 0.5), "gate": (None, None)})
    deleted = retention.run_once(NOW)
    # door holds 1050 MB; 0.5 GB leaves the writing segment and the newest 4
    check_deleted(tmp_path, recordings, deleted, door[:6])
    assert recordings.usage("door") == 450 * MB
    assert sorted(remaining(recordings)) == sorted([*door[6:], writing, *gate])
    assert retention.run_once(NOW) == []


def test_by_total_size_globally_oldest_first(tmp_path, recordings):
    door = [segment(tmp_path, recordings, "door", NOW - 1000 + i * 100, 100 * MB) for i in range(5)]
    gate = [segment(tmp_path, recordings, "gate", NOW - 950 + i * 100, 100 * MB) for i in range(5)]
    segment(tmp_path, recordings, "gate", NOW, 100 * MB, writing=True)
    deleted = Retention(tmp_path, recordings, {}, retain_gb=0.75).run_once(NOW)
    # 1100 MB held: the 4 oldest go, alternating cameras
    check_deleted(tmp_path, recordings, deleted, [door[0], gate[0], door[1], gate[1]])
    assert recordings.usage() == 700 * MB


def test_by_free_space_floor(tmp_path, recordings):
    door = [segment(tmp_path, recordings, "door", NOW - 1000 + i * 100, 300 * MB) for i in range(5)]
    gate = [segment(tmp_path, recordings, "gate", NOW - 1050 + i * 100, 300 * MB) for i in range(5)]
    segment(tmp_path, recordings, "door", NOW, 300 * MB, writing=True)
    usage = disk(tmp_path, 4 * GB)  # 3.3 GB used: 0.7 GB free
    retention = Retention(tmp_path, recordings, {}, min_free_gb=1.5, disk_usage=usage)
    deleted = retention.run_once(NOW)
    check_deleted(tmp_path, recordings, deleted, [gate[0], door[0], gate[1]])  # 0.9 GB freed
    assert usage(tmp_path).free == 1_600 * MB
    assert retention.run_once(NOW) == []


def test_nothing_but_the_writing_segment_left(tmp_path, recordings):
    writing = segment(tmp_path, recordings, "door", NOW - 10 * DAY, 2 * GB, writing=True)
    retention = Retention(tmp_path, recordings, {"door": (1, 1)}, retain_gb=1, min_free_gb=100,
                          disk_usage=disk(tmp_path, 3 * GB))
    assert retention.run_once(NOW) == []
    assert remaining(recordings) == [writing]


def test_old_gaps_go_with_the_recordings(tmp_path, recordings):
    segment(tmp_path, recordings, "door", NOW - 3 * DAY, MB)
    kept = segment(tmp_path, recordings, "door", NOW - DAY / 2, MB)
    ancient = recordings.open_gap("door", NOW - 4 * DAY, "offline")
    recordings.close_gap(ancient, NOW - 3.5 * DAY)
    older = recordings.open_gap("door", NOW - 2 * DAY, "offline")
    recordings.close_gap(older, NOW - DAY)
    newer = recordings.open_gap("door", NOW - DAY / 4, "offline")
    recordings.close_gap(newer, NOW - DAY / 8)
    still = recordings.open_gap("door", NOW - 10 * DAY, "offline")  # open: still going on, kept
    lost = recordings.open_gap("gate", NOW - 5 * DAY, "offline")  # a camera with no recording left
    recordings.close_gap(lost, NOW - 4 * DAY)
    gate_recent = recordings.open_gap("gate", NOW - DAY / 2, "offline")
    recordings.close_gap(gate_recent, NOW - DAY / 4)
    Retention(tmp_path, recordings, {"door": (1, None), "gate": (2, None)}).run_once(NOW)
    assert remaining(recordings) == [kept]
    assert {g.id for g in recordings.gaps()} == {newer, still, gate_recent}


def test_leftover_garbage_is_finished(tmp_path, recordings):
    path = segment(tmp_path, recordings, "door", NOW - 100, MB)
    recordings.retire(s.id for s in recordings.segments())  # a crash after the retire, before the unlink
    assert Retention(tmp_path, recordings).run_once(NOW) == [path]
    assert not (tmp_path / path).exists() and recordings.garbage() == []


def test_plan_stops_where_a_batch_runs_out():
    door = [Candidate(i, "door", 10.0 * i, 10.0 * i + 10, 10) for i in range(3)]
    gate = [Candidate(100 + i, "gate", 10.0 * i + 5, 10.0 * i + 15, 10) for i in range(5)]
    chosen = plan(1000, {"door": door, "gate": gate}, {"door": False, "gate": True},
                  {"door": 100, "gate": 50}, {}, retain_gb=0)
    # door's 4th segment (unseen) may be older than gate's 4th: stop after door's 3rd
    assert [c.id for c in chosen.chosen] == [0, 100, 1, 101, 2]
    assert chosen.more
    assert set(chosen.reasons.values()) == {"total_size"}


@pytest.mark.parametrize("seed", range(12))
def test_small_batches_choose_what_one_big_plan_does(tmp_path, seed):
    rng = random.Random(seed)
    cameras = ["a", "b", "c"]
    limits = {c: (rng.choice([None, 1.0, 3.0]), rng.choice([None, 0.2, 0.5])) for c in cameras}
    retain_gb = rng.choice([None, 0.6, 1.0])
    min_free_gb = rng.choice([None, 0.5, 1.5])
    results = []
    for batch in (2, 1000):
        root = tmp_path / str(batch)
        recordings = Recordings(Database.open(None))
        draw = random.Random(seed)
        for camera in cameras:
            start = NOW - 5 * DAY + draw.random() * DAY
            for _ in range(draw.randrange(0, 12)):
                segment(root, recordings, camera, start, draw.randrange(1, 120) * MB, minutes=60)
                start += 3600 * draw.uniform(1, 8)
            segment(root, recordings, camera, start, draw.randrange(1, 120) * MB, writing=True)
        retention = Retention(root, recordings, limits, retain_gb=retain_gb, min_free_gb=min_free_gb,
                              disk_usage=disk(root, 3 * GB), batch=batch, max_rounds=1000)
        deleted = retention.run_once(NOW)
        assert recordings.garbage() == []
        assert len(recordings.segments(state="writing")) == 3
        results.append(sorted(deleted))
    assert results[0] == results[1]


def test_camera_limits_default_to_none():
    assert CameraLimits() == CameraLimits(None, None)


def test_a_run_under_every_limit_reads_no_candidate_and_never_parses_their_keyframes(tmp_path, recordings,
                                                                                     monkeypatch):
    """Retention runs after every segment closes: it used to read and parse (keyframes and all) the oldest
    `batch` segments of every camera each time, work and memory that grew with the index for hours
    (`bench/soak.py` counted it as growth). Rows are read only for a limit that could choose them, and
    then without their keyframes."""
    import opticlink.store.recordings as store

    for camera in ("door", "gate"):
        for i in range(20):
            segment(tmp_path, recordings, camera, NOW - 3 * DAY + i * 60, MB)
    parsed: list[int] = []
    real_segment = store._segment
    monkeypatch.setattr(store, "_segment", lambda row: parsed.append(row.id) or real_segment(row))
    read: list[str] = []
    real_oldest = recordings.oldest_done
    monkeypatch.setattr(recordings, "oldest_done", lambda camera, limit: read.append(camera) or real_oldest(camera,
                                                                                                          limit))
    roomy = disk(tmp_path, 100 * GB)
    assert Retention(tmp_path, recordings, {"door": (None, 1), "gate": (10, None)}, retain_gb=10, min_free_gb=1,
                     disk_usage=roomy).run_once(NOW) == []
    assert len(parsed) <= 2  # the oldest segment of each camera, for its gaps: no candidate parsed
    assert read == ["gate"]  # its age limit may choose some; door is under its cap, all under the total and floor
    assert len(remaining(recordings)) == 40
    read.clear()
    parsed.clear()
    deleted = Retention(tmp_path, recordings, {"door": (2, None)}, disk_usage=roomy).run_once(NOW)
    assert len(deleted) == 20 and all(p.startswith("door/") for p in deleted) and read == ["door"]
    assert len(parsed) <= 2
