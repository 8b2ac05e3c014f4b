"""The recorder's gap counter in the metrics and the diagnostics (pure: a camera runtime stood in for by
the few objects `metrics.read_camera` reads): counted from the recorder's own stats, monotonic across a
rebuilt recorder, in the diagnostics answer and in the verdict while new."""

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from opticlink.api.diagnostics import Monitor, Sample, verdict
from opticlink.api.metrics import CameraCollector, Totals, read_camera
from opticlink.live.feed import LiveFeed
from opticlink.record.recorder import RecorderStats


def _runtime(camera: str, recorder) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    session = SimpleNamespace(state="playing", connects=1, ingest=None, engine=None)
    return SimpleNamespace(config=SimpleNamespace(id=camera), session=session, live=LiveFeed(camera),
                           substream=None, recorder=recorder, talk=None)


def _recorder(**counts: int) -> SimpleNamespace:
    return SimpleNamespace(stats=RecorderStats(**counts), _writer=None)


class _Service:  # what a Monitor reads of the service: its cameras
    def __init__(self, *runtimes: SimpleNamespace) -> None:
        self.cameras = {r.config.id: r for r in runtimes}


def _value(text: str, name: str, camera: str) -> float | None:
    line = next((x for x in text.splitlines() if x.startswith(f'{name}{{camera="{camera}"}}')), None)
    return float(line.split()[-1]) if line is not None else None


def test_gaps_and_skipped_frames_are_exported_per_camera_and_carried_across_a_new_recorder():
    door = _runtime("door", _recorder(gaps=2, frames_skipped=40, segments=3))
    gate = _runtime("gate", None)  # not recorded: no recording series at all
    totals = Totals()
    registry = CollectorRegistry()
    registry.register(CameraCollector(lambda: [door, gate], totals))
    text = generate_latest(registry).decode()
    assert _value(text, "opticlink_recording_gaps_total", "door") == 2
    assert _value(text, "opticlink_recording_frames_skipped_total", "door") == 40
    assert _value(text, "opticlink_recording_gaps_total", "gate") is None
    assert "# TYPE opticlink_recording_frames_skipped_total counter" in text

    door.recorder.stats.gaps = 3  # one more, opened and closed between two scrapes: still counted
    assert _value(generate_latest(registry).decode(), "opticlink_recording_gaps_total", "door") == 3
    door.recorder = _recorder(gaps=1, frames_skipped=5)  # the camera restarted (edited): a new recorder
    text = generate_latest(registry).decode()
    assert _value(text, "opticlink_recording_gaps_total", "door") == 4  # 3 banked, the new one's 1 on top
    assert _value(text, "opticlink_recording_frames_skipped_total", "door") == 45
    reading = read_camera(door, totals)
    assert reading.recording is not None and reading.recording["gaps"] == 4


def test_the_diagnostics_answer_gives_the_recording_counts_and_the_verdict_names_new_gaps():
    door = _runtime("door", _recorder(segments=1))
    service = _Service(door)
    monitor = Monitor(service)  # type: ignore[arg-type]
    for i in range(31):  # a minute of samples, 2 s apart; a gap and 12 frames lost at 40 s
        if i == 20:
            door.recorder.stats.gaps, door.recorder.stats.frames_skipped = 1, 12
        monitor.sample(1000.0 + 2 * i)
    report = monitor.report("door", 60, now=1060.0)
    assert report["recording"] == {"gaps": 1, "frames_skipped": 12, "segments": 1, "bytes": 0, "active": False}
    assert report["verdict"] == "recording: 1 gap and 12 frames skipped in the last minute"
    for i in range(31, 70):  # a minute later the gap is old news: all well, the totals stay
        monitor.sample(1000.0 + 2 * i)
    later = monitor.report("door", 60, now=1138.0)
    assert later["verdict"] == "all well" and later["recording"]["gaps"] == 1
    assert Monitor(_Service(_runtime("gate", None))).report("gate", 60)["recording"] is None  # type: ignore[arg-type]


def test_the_verdict_of_an_offline_camera_also_names_its_recording_gap():
    def sample(t: float, connected: bool, gaps: int) -> Sample:
        return Sample(t, connected, (), None, {"gaps": gaps, "frames_skipped": 0, "segments": 1, "bytes": 0,
                                               "active": 0})

    said = verdict([sample(1000, True, 0), sample(1002, True, 0), sample(1030, False, 1)])
    assert said == "the camera is offline (since 28 s); recording: 1 gap in the last 30 s"
