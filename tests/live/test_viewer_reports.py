"""What the live viewers' players report of themselves (audio underruns, latency) reaches the camera's
metrics, its diagnostics history and its verdict; a malformed or hostile report is refused and counts
nothing; the diagnostics history costs the same memory from its first sample to its last."""

from __future__ import annotations

import asyncio
import json
import math
import os

import httpx
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.diagnostics import MAX_TRACKS, History, Sample, TrackSample, columns, verdict
from opticlink.api.server import running
from opticlink.live.feed import MAX_UNDERRUNS_PER_REPORT, REPORT_FRESH_S, LiveFeed, Viewer
from opticlink.live.websocket import _player_report
from opticlink.sim.presets import camera
from tests.auth.helpers import credentials


@pytest.mark.parametrize(("control", "figures"), [
    ({"action": "report", "underruns": 0, "latencyMs": 64.5}, (0, 64.5)),
    ({"action": "report", "underruns": 3, "latencyMs": None}, (3, None)),
    ({"action": "report", "underruns": 2, "latencyMs": 80}, (2, 80.0)),
    ({"action": "report", "underruns": -1, "latencyMs": 10}, None),
    ({"action": "report", "underruns": 1.5, "latencyMs": 10}, None),
    ({"action": "report", "underruns": True, "latencyMs": 10}, None),
    ({"action": "report", "underruns": "1", "latencyMs": 10}, None),
    ({"action": "report", "underruns": 1 << 40, "latencyMs": 10}, None),
    ({"action": "report", "underruns": 0, "latencyMs": -5}, None),
    ({"action": "report", "underruns": 0, "latencyMs": math.nan}, None),
    ({"action": "report", "underruns": 0, "latencyMs": math.inf}, None),
    ({"action": "report", "underruns": 0, "latencyMs": [1]}, None),
    ({"action": "report"}, None),
])
def test_a_player_report_is_read_only_when_plausible(control, figures):
    assert _player_report(control) == figures


@given(st.dictionaries(st.text(max_size=12), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8), max_size=4))
def test_any_json_object_as_a_report_gives_figures_or_none_and_never_raises(control):
    figures = _player_report({"action": "report", **control})
    assert figures is None or (isinstance(figures[0], int) and figures[0] >= 0)


def test_the_feed_adds_up_its_viewers_underruns_and_keeps_the_slowest_fresh_latency():
    feed = LiveFeed("door")
    a, b = Viewer("a"), Viewer("b")
    feed.attach(a, 0.0)
    feed.attach(b, 0.0)
    feed.viewer_report(a, 0, 60.0, 100.0)
    feed.viewer_report(b, 2, 90.0, 100.0)
    feed.viewer_report(a, 1, 70.0, 102.0)
    feed.viewer_report(a, 1, 70.0, 104.0)  # the same count again: nothing new
    assert feed.viewer_underruns == 3
    assert feed.worst_viewer_latency_ms(104.0) == 90.0
    assert feed.worst_viewer_latency_ms(100.0 + REPORT_FRESH_S + 1) == 70.0  # b stopped reporting
    feed.viewer_report(a, 0, 50.0, 110.0)  # a restarted player: a new baseline, not a negative count
    feed.viewer_report(a, 5 * MAX_UNDERRUNS_PER_REPORT, 50.0, 112.0)  # a broken or lying player
    assert feed.viewer_underruns == 3 + MAX_UNDERRUNS_PER_REPORT
    feed.detach(b)
    assert feed.worst_viewer_latency_ms(112.0) == 50.0


def _sample(t: float, underruns: float = 0.0, latency: float | None = None, tracks: int = 2) -> Sample:
    return Sample(t, True, tuple(TrackSample(f"video-{i}", 12.0, 1.5, 0, 0, 25 * t, "rtcp", 0)
                                 for i in range(tracks)), 0.0, None, underruns, latency)


def test_the_verdict_says_when_live_viewers_sound_broke_up_or_lagged():
    calm = [_sample(t, 4.0, 70.0) for t in range(0, 62, 2)]
    assert verdict(calm) == "all well"
    broke = [*calm[:-1], _sample(60, 6.0, 70.0)]
    assert "live viewers' sound broke up 2 times in the last minute" in verdict(broke)
    late = [*calm[:-1], _sample(60, 4.0, 2500.0)]
    assert "live view is 2.5 s behind the camera" in verdict(late)


def test_the_history_gives_the_viewers_figures_per_interval():
    history = History()
    for i, (underruns, latency) in enumerate([(0, None), (0, 65.0), (3, 80.0), (3, 70.0)]):
        history.add(_sample(100.0 + 2 * i, underruns, latency))
    samples, _ = history.window(6, 106.0)
    out = columns(samples, 100.5)
    assert out["t"] == [102.0, 104.0, 106.0]
    assert out["series"]["viewer_underruns"] == [0, 3, 0]
    assert out["series"]["viewer_latency_ms"] == [65.0, 80.0, 70.0]


def test_the_history_round_trips_a_sample_and_keeps_at_most_max_tracks():
    history = History()
    first = Sample(5.0, True, (TrackSample("audio", 301.5, 39.0, 7, 2, 900, "fallback", 1, "reports frozen"),
                               TrackSample("video", None, None, 0, 0, 250, None, 0)),
                   -12.5, {"bytes": 10.0, "segments": 1.0, "gaps": 0.0, "frames_skipped": 0.0, "active": 1.0},
                   2.0, 64.0)
    history.add(first)
    assert history.fine[-1] == first
    history.add(_sample(7.0, tracks=MAX_TRACKS + 2))
    kept = [t.track for t in history.fine[-1].tracks]  # audio and video took two of the slots
    assert kept == [f"video-{i}" for i in range(MAX_TRACKS - 2)]
    assert history.fine[-1].connected is True
    assert [s.t for s in history.fine] == [5.0, 7.0]


def test_the_history_costs_the_same_memory_from_its_first_sample_to_a_day_of_them():
    history = History()
    history.add(_sample(0.0))
    before = history.fine.rows.nbytes + history.coarse.rows.nbytes
    for i in range(1, 2 * 1800):
        history.add(_sample(2.0 * i, i, 60.0))
    assert history.fine.rows.nbytes + history.coarse.rows.nbytes == before
    assert before < 2 << 20  # a camera's whole history: under 2 MB
    assert len(history.fine) == 1800 and history.fine[-1].viewer_underruns == 2 * 1800 - 1


@pytest.fixture
async def simulator():
    from opticlink.sim.server import SimulatorServer

    server = SimulatorServer([camera("cam1", width=320, height=180, bitrate=300_000)], port=0)
    await server.start()
    yield server
    await server.close()


async def test_a_viewers_reports_reach_the_metrics_and_the_diagnostics_and_a_bad_one_counts_nothing(simulator):
    config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=simulator.url("cam1"))], port=0)
    async with running(config) as (service, base):
        creds = credentials(service)
        url = base.replace("http", "ws", 1) + "/api/cameras/cam1/live"
        async with websockets.connect(url, additional_headers=creds.cookie_header, max_queue=None,
                                      max_size=None) as ws:
            await ws.send(json.dumps({"action": "report", "underruns": 2, "latencyMs": 71.5}))
            await ws.send(json.dumps({"action": "report", "underruns": 1e300, "latencyMs": 71.5}))  # refused
            await ws.send(json.dumps({"action": "report", "underruns": 3, "latencyMs": 75.0}))
            feed = service.cameras["cam1"].live
            async with asyncio.timeout(10):
                while feed.viewer_underruns < 3:
                    await asyncio.sleep(0.05)
            from opticlink.api.diagnostics import monitor
            monitor(service).sample()
            async with httpx.AsyncClient(base_url=base, headers=creds.bearer) as http:
                metrics = (await http.get("/metrics")).text
                report = (await http.get("/api/cameras/cam1/diagnostics", params={"seconds": 60})).json()
        assert feed.viewer_underruns == 3
        assert 'opticlink_viewer_underruns_total{camera="cam1"} 3.0' in metrics
        assert 'opticlink_viewer_latency_ms{camera="cam1"} 75.0' in metrics
        assert report["series"]["viewer_latency_ms"][-1] == 75.0


def test_the_hub_latency_ring_keeps_the_latest_samples_in_the_same_memory():
    from opticlink.live.feed import LatencyRing

    ring = LatencyRing(4)
    ring.extend([0.1, 0.2, 0.3])
    assert list(ring) == pytest.approx([0.1, 0.2, 0.3])
    ring.extend([0.4, 0.5])
    assert list(ring) == pytest.approx([0.2, 0.3, 0.4, 0.5]) and len(ring) == 4
    ring.extend([float(i) for i in range(10)])
    assert list(ring) == [6.0, 7.0, 8.0, 9.0]
    ring.clear()
    assert list(ring) == [] and len(ring) == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="resident memory read from Linux's /proc")
def test_the_hub_latency_ring_is_resident_from_the_start_not_as_it_fills():
    # issue 15: np.zeros left the ring's pages unmapped until samples reached them, so a camera's RSS
    # grew by the ring's size over its first quarter hour of viewers; the soak counted that as growth
    from opticlink.live.feed import LatencyRing

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    capacity = 1 << 22  # 16 MiB of float32: far above the allocator's noise
    ring = LatencyRing(capacity)
    before = resident()
    for _ in range(capacity // (1 << 16)):
        ring.extend([0.01] * (1 << 16))
    assert len(ring) == capacity
    assert resident() - before < 2 << 20
