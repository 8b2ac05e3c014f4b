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
import statistics
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

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


def sample_of(reading: CameraReading, t: float) -> Sample:
    return Sample(t, reading.connected,
                  tuple(TrackSample(r.track, r.skew_ppm, r.jitter_ms, r.lost, r.reordered, r.expected, r.source,
                                    r.reanchors, r.fallback_reason) for r in reading.tracks),
                  reading.av_correction_ms, dict(reading.recording) if reading.recording is not None else None)


class History:
    """One camera's samples: every one for `FINE_SPAN_S`, one per `COARSE_STEP_S` for `COARSE_SPAN_S`."""

    def __init__(self) -> None:
        self.fine: deque[Sample] = deque(maxlen=int(FINE_SPAN_S / FINE_STEP_S))
        self.coarse: deque[Sample] = deque(maxlen=int(COARSE_SPAN_S / COARSE_STEP_S))

    def add(self, sample: Sample) -> None:
        self.fine.append(sample)
        if not self.coarse or sample.t - self.coarse[-1].t >= COARSE_STEP_S - FINE_STEP_S / 2:
            self.coarse.append(sample)

    def window(self, seconds: float, now: float) -> tuple[list[Sample], float]:
        """The samples of the last `seconds` (the fine ring when it spans them), and their step."""
        ring, step = (self.fine, FINE_STEP_S) if seconds <= FINE_SPAN_S else (self.coarse, COARSE_STEP_S)
        start = now - seconds
        # one sample before the window too: the first interval's counts are a difference
        out = [s for s in ring if s.t >= start - step]
        return out, step


def columns(samples: Sequence[Sample], start: float) -> dict[str, Any]:
    """uPlot's columns: `t` (Unix seconds) and `series` "<track>.<field>" and "av_correction_ms"; counts
    (lost, reordered, reanchors) are per sample interval, `<track>.loss_pct` too; `source` is a code
    (`SOURCE_CODES`); null where unknown (the camera offline, a figure not known yet)."""
    tracks = sorted({t.track for s in samples for t in s.tracks})
    shown = [(i, s) for i, s in enumerate(samples) if s.t >= start]
    out: dict[str, list[float | int | None]] = {"connected": [1 if s.connected else 0 for _, s in shown],
                                                "av_correction_ms": [s.av_correction_ms for _, s in shown]}
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
        recent = [s for s in history.fine if s.t >= now - VERDICT_WINDOW_S - FINE_STEP_S / 2]
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
        `source_codes`; `av_correction_ms`, `connected`), and `verdict`: the last minute in plain words."""
        if camera not in service.cameras:
            raise HTTPException(404, f"no camera {camera!r}")
        return diagnostics.report(camera, seconds)

    return routes
