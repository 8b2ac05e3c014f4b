"""Each camera's timing and reception history, for a page to plot, and a verdict in plain words.

One task (`Monitor.run`) samples every camera each `FINE_STEP_S` (`metrics.read_camera`: the same
numbers `/metrics` exports) into two bounded rings per camera: every sample for `FINE_SPAN_S`, and
one each `COARSE_STEP_S` for `COARSE_SPAN_S`. `GET /api/cameras/{id}/diagnostics?seconds=N` gives
the last N seconds as columns for uPlot, and `verdict()` (pure) says what is wrong, if anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query

from opticlink.api.metrics import CameraCollector, CameraReading, Totals, read_camera

if TYPE_CHECKING:
    from opticlink.api.service import Service

log = logging.getLogger(__name__)

FINE_STEP_S = 2.0  # one sample per camera this often ...
FINE_SPAN_S = 3600.0  # ... kept for an hour (1800 samples)
COARSE_STEP_S = 60.0  # then one a minute ...
COARSE_SPAN_S = 86400.0  # ... for a day (1440 samples)
VERDICT_WINDOW_S = 60.0  # the verdict reads the last minute
DEFAULT_SECONDS = 600
SKEW_NOTE_PPM = 100.0  # a clock further off than this is worth saying (cameras are often 10-50 ppm off)
LOSS_NOTE_PCT = 0.5  # packets lost beyond this share in the window
JITTER_NOTE_MS = 30.0  # interarrival jitter beyond this
VIEWER_LATENCY_NOTE_MS = 1000.0  # a live view further behind than this is not "live" to the one watching
NO_REPORTS_AFTER_S = 10.0  # timed by arrival this long (cameras send a report each 5 s or so): it sends none
SOURCE_CODES = {"arrival": 0, "rtcp": 1, "fallback": 2}  # the `source` series: numbers for a plot
FIELDS = ("skew_ppm", "jitter_ms", "lost", "reordered", "source", "reanchors")


@dataclass(frozen=True, slots=True)
class TrackSample:
    track: str
    skew_ppm: float | None
    jitter_ms: float | None
    lost: float  # totals so far (monotonic); the route gives differences per sample
    reordered: float
    expected: float
    source: str | None
    reanchors: float
    fallback_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # Unix seconds
    connected: bool
    tracks: tuple[TrackSample, ...]
    av_correction_ms: float | None
    # the recorder's totals (`metrics.read_camera`): bytes, segments, gaps, frames_skipped, active; None: not recorded
    recording: dict[str, float] | None = None
    viewer_underruns: float = 0.0  # the live viewers' players' underruns so far (monotonic)
    viewer_latency_ms: float | None = None  # the worst viewer's latency p95 then; None: no viewer reported


def sample_of(reading: CameraReading, t: float) -> Sample:
    return Sample(t, reading.connected,
                  tuple(TrackSample(r.track, r.skew_ppm, r.jitter_ms, r.lost, r.reordered, r.expected, r.source,
                                    r.reanchors, r.fallback_reason) for r in reading.tracks),
                  reading.av_correction_ms, dict(reading.recording) if reading.recording is not None else None,
                  reading.viewer_underruns, reading.viewer_latency_ms)


# A sample is one row of float64 in a preallocated ring (NaN: unknown), so a camera's history costs the
# same from its first sample to its millionth: the camera's columns, then `MAX_TRACKS` tracks' columns.
MAX_TRACKS = 4  # tracks kept per camera (cameras have 1-3); further ones are left out of the history
RECORDING = ("bytes", "segments", "gaps", "frames_skipped", "active")
CAMERA_COLUMNS = ("t", "connected", "av_correction_ms", "viewer_underruns", "viewer_latency_ms", "recorded",
                  *(f"recording.{k}" for k in RECORDING))
TRACK_COLUMNS = ("present", "skew_ppm", "jitter_ms", "lost", "reordered", "expected", "source", "reanchors")
_CAMERA = {name: i for i, name in enumerate(CAMERA_COLUMNS)}
_SOURCES = {code: name for name, code in SOURCE_CODES.items()}


def _known(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class Ring:
    """The last `capacity` samples of one camera, as rows of a preallocated array; reads give `Sample`s."""

    def __init__(self, capacity: int, tracks: list[str], reasons: dict[str, str | None]) -> None:
        self.rows = np.full((capacity, len(CAMERA_COLUMNS) + MAX_TRACKS * len(TRACK_COLUMNS)), np.nan)
        self._next = 0  # the row the next sample goes to
        self._count = 0
        self._tracks = tracks  # the camera's track names, by slot (shared with the other ring)
        self._reasons = reasons  # each track's latest fallback reason: only the newest sample's is read

    def __len__(self) -> int:
        return self._count

    def append(self, row: np.ndarray) -> None:
        self.rows[self._next] = row
        self._next = (self._next + 1) % len(self.rows)
        self._count = min(self._count + 1, len(self.rows))

    def _ordered(self) -> np.ndarray:
        if self._count < len(self.rows):
            return self.rows[:self._count]
        return np.concatenate((self.rows[self._next:], self.rows[:self._next]))

    def since(self, t: float) -> list[Sample]:
        """The samples at or after Unix time `t`, oldest first."""
        rows = self._ordered()
        return [self._sample(row, last=i == len(rows) - 1) for i, row in enumerate(rows) if row[0] >= t]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.since(-math.inf))

    def __getitem__(self, index: int) -> Sample:
        if index != -1 or not self._count:
            raise IndexError("a ring gives its newest sample ([-1]) or all of them (iteration)")
        return self._sample(self.rows[(self._next - 1) % len(self.rows)], last=True)

    def _sample(self, row: np.ndarray, *, last: bool) -> Sample:
        c = _CAMERA
        tracks = []
        for slot, name in enumerate(self._tracks):
            f = row[len(CAMERA_COLUMNS) + slot * len(TRACK_COLUMNS):][:len(TRACK_COLUMNS)]
            if f[0] != 1.0:
                continue
            source = None if math.isnan(f[6]) else _SOURCES.get(int(f[6]))
            tracks.append(TrackSample(name, _known(f[1]), _known(f[2]), float(f[3]), float(f[4]), float(f[5]),
                                      source, float(f[7]), self._reasons.get(name) if last else None))
        recording = ({k: float(row[c[f"recording.{k}"]]) for k in RECORDING} if row[c["recorded"]] == 1.0
                     else None)
        return Sample(float(row[c["t"]]), bool(row[c["connected"]] == 1.0), tuple(tracks),
                      _known(row[c["av_correction_ms"]]), recording, float(row[c["viewer_underruns"]]),
                      _known(row[c["viewer_latency_ms"]]))


class History:
    """One camera's samples: every one for `FINE_SPAN_S`, one per `COARSE_STEP_S` for `COARSE_SPAN_S`,
    in two preallocated rings (`Ring`): about 1 MB per camera, whatever its age."""

    def __init__(self) -> None:
        self.tracks: list[str] = []
        self.reasons: dict[str, str | None] = {}
        self.fine = Ring(int(FINE_SPAN_S / FINE_STEP_S), self.tracks, self.reasons)
        self.coarse = Ring(int(COARSE_SPAN_S / COARSE_STEP_S), self.tracks, self.reasons)
        self._last_coarse = -math.inf

    def _row(self, sample: Sample) -> np.ndarray:
        row = np.full(self.fine.rows.shape[1], np.nan)
        c = _CAMERA
        row[c["t"]] = sample.t
        row[c["connected"]] = 1.0 if sample.connected else 0.0
        row[c["av_correction_ms"]] = np.nan if sample.av_correction_ms is None else sample.av_correction_ms
        row[c["viewer_underruns"]] = sample.viewer_underruns
        row[c["viewer_latency_ms"]] = np.nan if sample.viewer_latency_ms is None else sample.viewer_latency_ms
        row[c["recorded"]] = 0.0 if sample.recording is None else 1.0
        for k in RECORDING:
            row[c[f"recording.{k}"]] = (sample.recording or {}).get(k, 0.0)
        for track in sample.tracks:
            if track.track not in self.tracks:
                if len(self.tracks) == MAX_TRACKS:
                    continue
                self.tracks.append(track.track)
            self.reasons[track.track] = track.fallback_reason
            at = len(CAMERA_COLUMNS) + self.tracks.index(track.track) * len(TRACK_COLUMNS)
            row[at:at + len(TRACK_COLUMNS)] = (
                1.0, np.nan if track.skew_ppm is None else track.skew_ppm,
                np.nan if track.jitter_ms is None else track.jitter_ms, track.lost, track.reordered, track.expected,
                SOURCE_CODES.get(track.source, np.nan) if track.source is not None else np.nan, track.reanchors)
        return row

    def add(self, sample: Sample) -> None:
        row = self._row(sample)
        self.fine.append(row)
        if sample.t - self._last_coarse >= COARSE_STEP_S - FINE_STEP_S / 2:
            self.coarse.append(row)
            self._last_coarse = sample.t

    def window(self, seconds: float, now: float) -> tuple[list[Sample], float]:
        """The samples of the last `seconds` (the fine ring when it spans them), and their step."""
        ring, step = (self.fine, FINE_STEP_S) if seconds <= FINE_SPAN_S else (self.coarse, COARSE_STEP_S)
        # one sample before the window too: the first interval's counts are a difference
        return ring.since(now - seconds - step), step


def columns(samples: Sequence[Sample], start: float) -> dict[str, Any]:
    """uPlot's columns: `t` (Unix seconds) and `series` "<track>.<field>", "av_correction_ms",
    "viewer_underruns" and "viewer_latency_ms" (the live viewers' players' reports); counts (lost,
    reordered, reanchors, viewer underruns) are per sample interval, `<track>.loss_pct` too; `source` is a code
    (`SOURCE_CODES`); null where unknown (the camera offline, a figure not known yet)."""
    tracks = sorted({t.track for s in samples for t in s.tracks})
    shown = [(i, s) for i, s in enumerate(samples) if s.t >= start]
    out: dict[str, list[float | int | None]] = {
        "connected": [1 if s.connected else 0 for _, s in shown],
        "av_correction_ms": [s.av_correction_ms for _, s in shown],
        "viewer_underruns": [s.viewer_underruns - samples[i - 1].viewer_underruns if i > 0 else None
                             for i, s in shown],
        "viewer_latency_ms": [s.viewer_latency_ms for _, s in shown]}
    for name in tracks:
        series: dict[str, list[float | int | None]] = {f"{name}.{f}": [] for f in (*FIELDS, "loss_pct")}
        for i, s in shown:
            now = next((t for t in s.tracks if t.track == name), None)
            before = next((t for t in samples[i - 1].tracks if t.track == name), None) if i > 0 else None
            series[f"{name}.skew_ppm"].append(now.skew_ppm if now else None)
            series[f"{name}.jitter_ms"].append(now.jitter_ms if now else None)
            series[f"{name}.source"].append(SOURCE_CODES.get(now.source) if now and now.source else None)
            for f in ("lost", "reordered", "reanchors"):
                series[f"{name}.{f}"].append(getattr(now, f) - getattr(before, f) if now and before else None)
            expected = now.expected - before.expected if now and before else 0
            lost = now.lost - before.lost if now and before else 0
            series[f"{name}.loss_pct"].append(round(100 * lost / expected, 2) if expected > 0 else None)
        out.update(series)
    return {"t": [round(s.t, 3) for _, s in shown], "series": out}


def _recording_totals(recording: dict[str, float] | None) -> dict[str, Any] | None:
    """The recorder's totals for the route: whole numbers, `active` true or false; None: not recorded."""
    if recording is None:
        return None
    return {"gaps": int(recording.get("gaps", 0)), "frames_skipped": int(recording.get("frames_skipped", 0)),
            "segments": int(recording.get("segments", 0)), "bytes": int(recording.get("bytes", 0)),
            "active": bool(recording.get("active", 0))}


def verdict(samples: Sequence[Sample]) -> str:
    """What is wrong with the camera's timing and reception over `samples` (oldest first, e.g. the
    last minute), in one line of plain words; "all well" when nothing is."""
    if not samples:
        return "no data yet"
    last = samples[-1]
    first = samples[0]
    recorded = _recording_note(first, last)
    if not last.connected:
        seen = next((s.t for s in reversed(samples) if s.connected), None)
        offline = "the camera is offline" + (f" (since {last.t - seen:.0f} s)" if seen is not None else "")
        return "; ".join([offline, *recorded])
    said: list[str] = []
    now = {t.track: t for t in last.tracks}
    then = {t.track: t for t in first.tracks}
    # loss, over the window
    expected = sum(now[k].expected - then[k].expected for k in now if k in then)
    lost = sum(now[k].lost - then[k].lost for k in now if k in then)
    if expected > 0 and 100 * lost / expected >= LOSS_NOTE_PCT:
        said.append(f"packets lost: {100 * lost / expected:.0f} % in the last {_span_words(last.t - first.t)}")
    # re-anchors, over the window
    for name, track in now.items():
        jumps = track.reanchors - then[name].reanchors if name in then else 0
        if jumps > 0:
            said.append(f"the {name} timeline re-anchored {jumps:.0f} time{'s' if jumps != 1 else ''} "
                        "(the camera's timestamps or clock jumped)")
    # the mapping source, now
    sources = {t.source for t in last.tracks if t.source is not None}
    if sources and sources <= {"arrival", "fallback"}:
        jitter = max((t.jitter_ms for t in last.tracks if t.jitter_ms is not None), default=0.0)
        accuracy = max(1, round(2 * jitter))
        reasons = sorted({t.fallback_reason for t in last.tracks if t.fallback_reason})
        if sources == {"arrival"}:
            # every camera is timed by arrival until its first reports: "sends none" once that has lasted
            since = next((s.t for s in samples if s.connected and any(t.source for t in s.tracks)), last.t)
            lasted = last.t - since >= NO_REPORTS_AFTER_S and all(
                t.source in (None, "arrival") for s in samples if s.t >= since for t in s.tracks)
            why = ("the camera sends no RTCP Sender Reports" if lasted else
                   "no RTCP Sender Reports from the camera yet")
        else:
            why = (f"the camera's RTCP Sender Reports are refused ({'; '.join(reasons)})" if reasons else
                   "the camera's RTCP Sender Reports are refused")
        said.append(f"{why}: lip sync relies on arrival times, accurate to ±{accuracy} ms")
    elif "fallback" in sources or "arrival" in sources:
        odd = sorted(t.track for t in last.tracks if t.source in ("arrival", "fallback"))
        said.append(f"no usable RTCP Sender Reports for the {' and '.join(odd)}: timed by arrival")
    # clock skew: the median over the window, per track
    clocks = []
    for name in sorted(now):
        values = [t.skew_ppm for s in samples for t in s.tracks if t.track == name and t.skew_ppm is not None]
        if values and abs(skew := statistics.median(values)) >= SKEW_NOTE_PPM:
            clocks.append(f"{name} clock runs {abs(skew):.0f} ppm {'fast' if skew > 0 else 'slow'}")
    if clocks:
        said.append(f"the camera's {' and its '.join(clocks)}; corrected")
    # jitter, now
    rough = [f"{t.track} {t.jitter_ms:.0f} ms" for t in last.tracks
             if t.jitter_ms is not None and t.jitter_ms >= JITTER_NOTE_MS]
    if rough:
        said.append(f"network jitter: {', '.join(rough)}")
    # what the live viewers heard and saw, over the window
    underruns = last.viewer_underruns - first.viewer_underruns
    if underruns > 0:
        said.append(f"live viewers' sound broke up {underruns:.0f} time{'s' if underruns != 1 else ''} "
                    f"in the last {_span_words(last.t - first.t)} (their players ran out of audio)")
    if last.viewer_latency_ms is not None and last.viewer_latency_ms >= VIEWER_LATENCY_NOTE_MS:
        said.append(f"live view is {last.viewer_latency_ms / 1000:.1f} s behind the camera for its slowest viewer")
    said += recorded
    return "; ".join(said) if said else "all well"


def _recording_note(first: Sample, last: Sample) -> list[str]:
    """The recording's gaps and skipped frames between two samples, in words (none: [])."""
    if first.recording is None or last.recording is None:
        return []
    gaps = last.recording.get("gaps", 0) - first.recording.get("gaps", 0)
    skipped = last.recording.get("frames_skipped", 0) - first.recording.get("frames_skipped", 0)
    if gaps <= 0 and skipped <= 0:
        return []
    parts = [f"{gaps:.0f} gap{'s' if gaps != 1 else ''}"] if gaps > 0 else []
    if skipped > 0:
        parts.append(f"{skipped:.0f} frame{'s' if skipped != 1 else ''} skipped")
    return [f"recording: {' and '.join(parts)} in the last {_span_words(last.t - first.t)}"]


def _span_words(span: float) -> str:
    return "minute" if abs(span - 60) < 10 else f"{span:.0f} s"


class Monitor:
    """The service's diagnostics: monotonic totals (shared with the metrics), each camera's history,
    and the sampling task."""

    def __init__(self, service: Service) -> None:
        self._service = weakref.ref(service)
        self.totals = Totals()
        self.histories: dict[str, History] = {}
        self.task: asyncio.Task[None] | None = None

    def runtimes(self) -> list[Any]:
        service = self._service()
        return list(service.cameras.values()) if service is not None else []

    def collector(self) -> CameraCollector:
        return CameraCollector(self.runtimes, self.totals)

    def sample(self, t: float | None = None) -> None:
        """Sample every camera now (Unix time `t`); forget the history of cameras removed."""
        t = time.time() if t is None else t
        runtimes = self.runtimes()
        for runtime in runtimes:
            reading = read_camera(runtime, self.totals)
            self.histories.setdefault(reading.camera, History()).add(sample_of(reading, t))
        ids = {runtime.config.id for runtime in runtimes}
        for gone in [camera for camera in self.histories if camera not in ids]:
            del self.histories[gone]
        self.totals.keep(ids)

    async def run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a stats object half rebuilt: the next sample is 2 s away
                log.exception("diagnostics: sampling failed")
            await asyncio.sleep(FINE_STEP_S)

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run(), name="diagnostics")

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def report(self, camera: str, seconds: float, now: float | None = None) -> dict[str, Any]:
        """The route's answer: the last `seconds` as uPlot columns, and the verdict of the last minute."""
        now = time.time() if now is None else now
        history = self.histories.get(camera) or History()
        samples, step = history.window(seconds, now)
        recent = history.fine.since(now - VERDICT_WINDOW_S - FINE_STEP_S / 2)
        latest = history.fine[-1] if history.fine else None
        return {"camera": camera, "seconds": seconds, "step_s": step, **columns(samples, now - seconds),
                "source_codes": SOURCE_CODES, "verdict": verdict(recent),
                "recording": _recording_totals(latest.recording if latest is not None else None)}


_monitors: weakref.WeakKeyDictionary[Service, Monitor] = weakref.WeakKeyDictionary()


def monitor(service: Service) -> Monitor:
    """The service's one `Monitor` (made at first use; it samples while the service runs)."""
    found = _monitors.get(service)
    if found is None:
        found = _monitors[service] = Monitor(service)
        service.companions.append(found)
        if service.started:
            found.start()
    return found


def router(service: Service, caller: Callable[..., Any]) -> APIRouter:
    """The diagnostics route; `caller`: the dependency that requires a logged-in user (any role may watch
    any camera, so any may read its diagnostics)."""
    routes = APIRouter()
    diagnostics = monitor(service)

    @routes.get("/api/cameras/{camera}/diagnostics")
    async def camera_diagnostics(camera: str,
                                 seconds: Annotated[int, Query(ge=10, le=int(COARSE_SPAN_S))] = DEFAULT_SECONDS,
                                 _: Any = Depends(caller)) -> dict[str, Any]:  # noqa: B008 (FastAPI's way)
        """The camera's timing and reception over the last `seconds` (a sample each 2 s up to an hour, each
        minute up to a day), as columns for uPlot: `t` (Unix seconds) and `series` (`<track>.skew_ppm`,
        `.jitter_ms`, `.lost`, `.reordered`, `.reanchors` per sample, `.loss_pct`, `.source` coded as
        `source_codes`; `av_correction_ms`, `connected`; `viewer_underruns` per sample and
        `viewer_latency_ms`, from the live viewers' players), and `verdict`: the last minute in plain words."""
        if camera not in service.cameras:
            raise HTTPException(404, f"no camera {camera!r}")
        return diagnostics.report(camera, seconds)

    return routes
