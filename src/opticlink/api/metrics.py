"""Per-camera Prometheus metrics, read from the live stats objects at scrape time.

`read_camera` turns one camera runtime's stats (session, RTP receivers, sync engine, live feed,
recorder, talk) into a `CameraReading`; `CameraCollector` exports the readings of every camera at
each scrape, and the diagnostics sampler (`api.diagnostics`) keeps them as history. Counters must
never go down, but the objects behind them are rebuilt (a reconnection makes a new ingest and sync
engine): `Totals` carries each count across such a rebuild, so the exported series are monotonic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from opticlink.api.service import CameraRuntime

SOURCES = ("arrival", "rtcp", "fallback")  # the sync engine's mapping sources (`sync.engine.Source`)


class Totals:
    """Monotonic totals of counts whose source object may be replaced (then its count restarts).

    `add(key, source, value)`: the running total of `key`; when `source` is not the object last
    seen for `key` (a reconnection rebuilt it), the last value seen is banked first. A value that
    goes down without a new source (a racing read) never lowers the total.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], tuple[object, float, float, float]] = {}  # source, banked, last, total
        self._markers: dict[tuple[str, ...], tuple[object, int]] = {}  # last marker, distinct markers seen
        self._lock = threading.Lock()  # the sampler and a scrape may read at once

    def add(self, key: tuple[str, ...], source: object, value: float) -> float:
        with self._lock:
            known = self._seen.get(key)
            if known is None:
                banked, total = 0.0, float(value)
            else:
                before, banked, last, total = known
                if before is not source:
                    banked += last
                total = max(total, banked + value)
            self._seen[key] = (source, banked, float(value), total)
            return total

    def distinct(self, key: tuple[str, ...], marker: object | None) -> float:
        """How many distinct markers (not None) have been seen for `key`, one after another."""
        with self._lock:
            last, count = self._markers.get(key, (None, 0))
            if marker is not None and marker != last:
                last, count = marker, count + 1
            self._markers[key] = (last, count)
            return float(count)

    def keep(self, cameras: Iterable[str]) -> None:
        """Forget the totals of cameras no longer configured (key[0] is the camera id)."""
        wanted = set(cameras)
        with self._lock:
            for table in (self._seen, self._markers):
                for key in [k for k in table if k[0] not in wanted]:
                    del table[key]


@dataclass(slots=True)
class TrackReading:
    """One received track now: clock skew and interarrival jitter (None until known), counts so far."""

    track: str  # its kind ("audio", "video"), with its index when the camera has two of a kind
    skew_ppm: float | None = None
    jitter_ms: float | None = None
    lost: float = 0.0  # packets the jitter buffer gave up on
    reordered: float = 0.0
    expected: float = 0.0  # packets the sequence numbers say were sent
    source: str | None = None  # arrival, rtcp or fallback (the sync engine's mapping)
    reanchors: float = 0.0
    fallback_reason: str | None = None  # why the Sender Reports were refused (source "fallback")


@dataclass(slots=True)
class CameraReading:
    """One camera now, as the metrics and the diagnostics history read it (counts are monotonic)."""

    camera: str
    connected: bool
    reconnects: float
    viewers: dict[str, int]  # per stream: main, sub
    tracks: list[TrackReading] = field(default_factory=list)
    av_correction_ms: float | None = None
    recording: dict[str, float] | None = None  # bytes, segments, gaps, frames_skipped, active; None: not recorded
    talk: dict[str, float] | None = None  # sessions, packets; None: no talk
    viewer_underruns: float = 0.0  # audio underruns the live viewers' players reported, so far
    viewer_latency_ms: float | None = None  # the worst viewer's latency p95 now; None: no viewer reports


def _track_names(kinds: list[tuple[int, str]]) -> dict[int, str]:
    """Each track's label: its kind, or kind-index when the camera has two tracks of that kind."""
    counts: dict[str, int] = {}
    for _, kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return {index: kind if counts[kind] == 1 else f"{kind}-{index}" for index, kind in kinds}


def read_camera(runtime: CameraRuntime, totals: Totals) -> CameraReading:
    """The camera's numbers now; counts go through `totals` (monotonic across reconnections)."""
    session, camera = runtime.session, runtime.config.id
    viewers = {"main": len(runtime.live.viewers)}
    sub = runtime.substream
    if sub is not None:
        viewers["sub"] = len(sub.live.viewers) if sub.live is not None else 0
    out = CameraReading(camera=camera, connected=session.state == "playing",
                        reconnects=totals.add((camera, "reconnects"), session, max(0, session.connects - 1)),
                        viewers=viewers)
    feeds = {"main": runtime.live, "sub": sub.live if sub is not None else None}
    now = time.monotonic()
    latencies = []
    for stream, feed in feeds.items():
        if feed is not None:
            out.viewer_underruns += totals.add((camera, stream, "viewer_underruns"), feed, feed.viewer_underruns)
            latencies.append(feed.worst_viewer_latency_ms(now))
    out.viewer_latency_ms = max((x for x in latencies if x is not None), default=None)
    ingest, engine = session.ingest, session.engine
    kinds = [(index, state.track.kind) for index, state in ingest.states.items()] if ingest is not None else []
    names = _track_names(kinds)
    by_index: dict[int, TrackReading] = {}
    if ingest is not None:
        for index, state in ingest.states.items():
            receiver, name = state.receiver, names[index]
            by_index[index] = TrackReading(
                track=name, jitter_ms=round(receiver.stats.jitter_ms, 3),
                lost=totals.add((camera, name, "lost"), ingest, receiver.buffer.lost),
                reordered=totals.add((camera, name, "reordered"), ingest, receiver.stats.reordered),
                expected=totals.add((camera, name, "expected"), ingest, receiver.stats.expected))
    sync = engine.stats() if engine is not None else None
    if sync is not None:
        for stats in sync.tracks:
            name = names.get(stats.track, stats.kind)
            reading = by_index.setdefault(stats.track, TrackReading(track=name))
            reading.skew_ppm = stats.skew_ppm
            reading.source = stats.source
            reading.fallback_reason = stats.fallback_reason
            reading.reanchors = totals.add((camera, name, "reanchors"), engine, stats.reanchors)
        out.av_correction_ms = sync.av_correction_ms
    if session.state != "playing":  # a camera that is gone has no current skew, jitter or source
        for reading in by_index.values():
            reading.skew_ppm = reading.jitter_ms = reading.source = None
        out.av_correction_ms = None
    out.tracks = [by_index[index] for index in sorted(by_index)]
    recorder = runtime.recorder
    if recorder is not None:
        stats = recorder.stats
        # the segment being written counts once its segment closes (`stats.bytes`); until then, as far as written
        writer = getattr(recorder, "_writer", None)
        written = stats.bytes + (getattr(writer, "bytes", 0) if writer is not None else 0)
        out.recording = {
            "bytes": totals.add((camera, "recording", "bytes"), recorder, written),
            "segments": totals.add((camera, "recording", "segments"), recorder, stats.segments),
            # the recorder's own counts (`RecorderStats`): every gap it indexed, however short, and the frames
            # it lost (its queue overflowed, the disk was full); carried across a camera restart
            "gaps": totals.add((camera, "recording", "gaps"), recorder, stats.gaps),
            "frames_skipped": totals.add((camera, "recording", "frames_skipped"), recorder, stats.frames_skipped),
            "active": 1.0 if writer is not None else 0.0,
        }
    talk = runtime.talk
    if talk is not None:
        out.talk = {"sessions": totals.add((camera, "talk", "sessions"), talk, talk.opens),
                    "packets": totals.add((camera, "talk", "packets"), talk, talk.packets_sent)}
    return out


class CameraCollector:
    """A Prometheus collector: every camera's metrics, read when scraped (see the README's Metrics)."""

    def __init__(self, runtimes: Callable[[], Iterable[CameraRuntime]], totals: Totals) -> None:
        self.runtimes = runtimes
        self.totals = totals

    def describe(self) -> list[Metric]:
        return []  # nothing to check against other collectors' names at registration

    def collect(self) -> Iterator[Metric]:
        readings = [read_camera(runtime, self.totals) for runtime in list(self.runtimes())]
        self.totals.keep(r.camera for r in readings)
        yield from families(readings)


def families(readings: list[CameraReading]) -> Iterator[Metric]:
    """The metric families of these readings."""
    cam, track = ["camera"], ["camera", "track"]
    connected = GaugeMetricFamily("opticlink_camera_connected", "1 while the camera session plays", labels=cam)
    reconnects = CounterMetricFamily("opticlink_camera_reconnects", "connections after the first", labels=cam)
    viewers = GaugeMetricFamily("opticlink_live_viewers", "live viewers per stream (main, sub)",
                                labels=["camera", "stream"])
    skew = GaugeMetricFamily("opticlink_sync_skew_ppm", "the track's clock against the camera's wall clock "
                             "(Sender Reports) or ours (arrival); positive: fast", labels=track)
    jitter = GaugeMetricFamily("opticlink_rtp_jitter_ms", "RTP interarrival jitter (RFC 3550), ms", labels=track)
    lost = CounterMetricFamily("opticlink_rtp_packets_lost", "RTP packets given up as lost", labels=track)
    reordered = CounterMetricFamily("opticlink_rtp_packets_reordered", "RTP packets that came out of order",
                                    labels=track)
    expected = CounterMetricFamily("opticlink_rtp_packets_expected", "RTP packets the camera sent, by their "
                                   "sequence numbers (the denominator of a loss ratio)", labels=track)
    source = GaugeMetricFamily("opticlink_sync_source", "1 for the sync engine's mapping source of the track "
                               "(rtcp: Sender Reports; arrival: no reports yet or none; fallback: reports "
                               "refused)", labels=["camera", "track", "source"])
    reanchors = CounterMetricFamily("opticlink_sync_reanchors", "timeline re-anchors (a jump in the camera's "
                                    "timestamps or clock)", labels=track)
    av = GaugeMetricFamily("opticlink_sync_av_correction_ms", "how far audio is moved against video, relative "
                           "to arrival timing, ms", labels=cam)
    rec_bytes = CounterMetricFamily("opticlink_recording_bytes", "bytes written to recordings", labels=cam)
    rec_segments = CounterMetricFamily("opticlink_recording_segments", "recording segments started", labels=cam)
    rec_gaps = CounterMetricFamily("opticlink_recording_gaps", "recording gaps opened (camera offline, "
                                   "restarted stream, overflow, disk full, service not running)", labels=cam)
    rec_skipped = CounterMetricFamily("opticlink_recording_frames_skipped", "frames lost to the recording (the "
                                      "recorder's queue overflowed, the disk was full)", labels=cam)
    rec_active = GaugeMetricFamily("opticlink_recording_active", "1 while a segment is being written", labels=cam)
    talk_sessions = CounterMetricFamily("opticlink_talk_sessions", "backchannel opens (talk)", labels=cam)
    viewer_underruns = CounterMetricFamily("opticlink_viewer_underruns", "audio underruns the live viewers' "
                                           "players reported (the sound broke up)", labels=cam)
    viewer_latency = GaugeMetricFamily("opticlink_viewer_latency_ms", "the worst live viewer's latency p95, camera "
                                       "capture to screen, as its player measures it, ms", labels=cam)
    talk_packets = CounterMetricFamily("opticlink_talk_packets_sent", "talk frames sent to the camera's "
                                       "speaker (one RTP packet each)", labels=cam)
    for r in readings:
        c = r.camera
        connected.add_metric([c], 1.0 if r.connected else 0.0)
        reconnects.add_metric([c], r.reconnects)
        for stream, count in r.viewers.items():
            viewers.add_metric([c, stream], count)
        for t in r.tracks:
            labels = [c, t.track]
            if t.skew_ppm is not None:
                skew.add_metric(labels, t.skew_ppm)
            if t.jitter_ms is not None:
                jitter.add_metric(labels, t.jitter_ms)
            lost.add_metric(labels, t.lost)
            reordered.add_metric(labels, t.reordered)
            expected.add_metric(labels, t.expected)
            reanchors.add_metric(labels, t.reanchors)
            if t.source is not None:
                for name in SOURCES:
                    source.add_metric([c, t.track, name], 1.0 if t.source == name else 0.0)
        if r.av_correction_ms is not None:
            av.add_metric([c], r.av_correction_ms)
        if r.recording is not None:
            rec_bytes.add_metric([c], r.recording["bytes"])
            rec_segments.add_metric([c], r.recording["segments"])
            rec_gaps.add_metric([c], r.recording["gaps"])
            rec_skipped.add_metric([c], r.recording["frames_skipped"])
            rec_active.add_metric([c], r.recording["active"])
        viewer_underruns.add_metric([c], r.viewer_underruns)
        if r.viewer_latency_ms is not None:
            viewer_latency.add_metric([c], r.viewer_latency_ms)
        if r.talk is not None:
            talk_sessions.add_metric([c], r.talk["sessions"])
            talk_packets.add_metric([c], r.talk["packets"])
    yield from (connected, reconnects, viewers, skew, jitter, lost, reordered, expected, source, reanchors, av,
                rec_bytes, rec_segments, rec_gaps, rec_skipped, rec_active, viewer_underruns, viewer_latency,
                talk_sessions, talk_packets)
