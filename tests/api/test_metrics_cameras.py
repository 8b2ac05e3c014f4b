"""Per-camera metrics and the diagnostics history: monotonic totals, the verdict (pure, then on simulated
cameras through the service), /metrics and /api/cameras/{id}/diagnostics."""

import asyncio
import time

import httpx
import pytest

from opticlink.api import diagnostics
from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.diagnostics import FINE_SPAN_S, FINE_STEP_S, History, Sample, TrackSample, verdict
from opticlink.api.metrics import Totals
from opticlink.api.service import Service
from opticlink.sim.faults import Faults
from tests.auth.helpers import credentials
from tests.conftest import small_camera


def test_totals_carry_a_count_across_a_rebuilt_source_and_never_go_down():
    totals, first, second = Totals(), object(), object()
    assert totals.add(("door", "lost"), first, 5) == 5
    assert totals.add(("door", "lost"), first, 7) == 7
    assert totals.add(("door", "lost"), second, 1) == 8  # a reconnection: 7 banked, the new ingest's 1 on top
    assert totals.add(("door", "lost"), second, 0) == 8  # a racing lower read never lowers the total
    assert totals.distinct(("door", "gaps"), 11) == 1
    assert totals.distinct(("door", "gaps"), None) == 1
    assert totals.distinct(("door", "gaps"), 11) == 1  # the same gap seen again
    assert totals.distinct(("door", "gaps"), 12) == 2
    totals.keep(["gate"])
    assert totals.add(("door", "lost"), second, 1) == 1  # a removed camera's totals are forgotten


def _track(name="audio", *, skew=None, jitter=1.0, lost=0, expected=0, source="rtcp", reanchors=0, reason=None):
    return TrackSample(name, skew, jitter, lost, 0, expected, source, reanchors, reason)


def _minute(**audio):
    """31 samples 2 s apart (a minute); `audio` as keyword lists (one value per sample) or constants."""
    out = []
    for i in range(31):
        values = {k: v[i] if isinstance(v, list) else v for k, v in audio.items()}
        connected = values.pop("connected", True)
        video = {k: v for k, v in values.items() if k in ("source", "reason")}
        out.append(Sample(1000.0 + 2 * i, connected, (_track("video", **video),
                                                     _track(**values)), 0.0))
    return out


def test_the_verdict_of_a_clean_camera_is_all_well():
    assert verdict(_minute(skew=12.0, expected=[50 * i for i in range(31)])) == "all well"
    assert verdict([]) == "no data yet"


def test_the_verdict_names_a_fast_audio_clock():
    assert verdict(_minute(skew=300.0)) == "the camera's audio clock runs 300 ppm fast; corrected"
    assert "audio clock runs 180 ppm slow" in verdict(_minute(skew=-180.0))


def test_the_verdict_says_timing_comes_from_arrival_without_sender_reports():
    said = verdict(_minute(source="arrival", jitter=3.0))
    assert said == "the camera sends no RTCP Sender Reports: lip sync relies on arrival times, accurate to ±6 ms"
    said = verdict(_minute(source="fallback", reason="the camera's wall clock froze"))
    assert said == ("the camera's RTCP Sender Reports are refused (the camera's wall clock froze): lip sync relies "
                    "on arrival times, accurate to ±2 ms")


def test_the_verdict_waits_before_saying_a_camera_sends_no_sender_reports():
    # every camera is timed by arrival until its first report comes: not a fault in its first seconds
    young = [s for s in _minute(source="arrival", jitter=3.0) if s.t >= 1054]  # 6 s of samples
    assert verdict(young).startswith("no RTCP Sender Reports from the camera yet: lip sync relies on arrival")
    # a camera whose audio is timed by reports but its video not: the odd track named
    mixed = [Sample(s.t, True, (_track("video", source="arrival"), _track(source="rtcp")), 0.0)
             for s in _minute()]
    assert verdict(mixed) == "no usable RTCP Sender Reports for the video: timed by arrival"


def test_the_verdict_counts_lost_packets_offline_and_re_anchors():
    said = verdict(_minute(expected=[100 * i for i in range(31)], lost=[3 * i for i in range(31)]))
    assert said == "packets lost: 3 % in the last minute"
    assert verdict(_minute(connected=[i < 20 for i in range(31)])) == "the camera is offline (since 22 s)"
    assert "audio timeline re-anchored 2 times" in verdict(_minute(reanchors=[0] * 15 + [2] * 16))


def test_the_history_is_bounded_and_thinned_to_one_a_minute():
    history = History()
    for i in range(int(2 * FINE_SPAN_S / FINE_STEP_S)):
        history.add(Sample(i * FINE_STEP_S, True, (_track(),), None))
    assert len(history.fine) == FINE_SPAN_S / FINE_STEP_S
    assert len(history.coarse) == pytest.approx(2 * FINE_SPAN_S / 60, abs=1)
    samples, step = history.window(7200, 2 * FINE_SPAN_S)
    assert step == 60 and len(samples) >= 119


async def _wait(check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (found := await check()) is not None:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError("never reached")


@pytest.mark.slow
@pytest.mark.parametrize("simulator", [[small_camera("cam1", faults=Faults(audio_skew_ppm=300, seed=3)),
                                        small_camera("cam2", faults=Faults(sender_reports="absent", seed=4))]],
                         indirect=True)
async def test_simulated_faults_reach_the_metrics_the_history_and_the_verdict(simulator):
    service = Service(ServiceConfig(cameras=[CameraConfig(id="door", url=simulator.url("cam1"), talkback=False),
                                             CameraConfig(id="gate", url=simulator.url("cam2"), talkback=False)]))
    await service.start()
    monitor = diagnostics.monitor(service)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://127.0.0.1", headers=credentials(service).bearer) as client:

            async def verdicts():
                door = (await client.get("/api/cameras/door/diagnostics?seconds=60")).json()
                gate = (await client.get("/api/cameras/gate/diagnostics?seconds=60")).json()
                skews = [v for v in door["series"].get("audio.skew_ppm", []) if v is not None]
                # the first Sender Reports give a coarse figure (8 kHz ticks over a second or two): wait
                if skews and abs(skews[-1] - 300) < 60 and "sends no RTCP" in gate["verdict"]:
                    return door, gate
                return None

            door, gate = await _wait(verdicts, 40)
            assert "the camera's audio clock runs 3" in door["verdict"] and door["verdict"].endswith("corrected")
            assert gate["verdict"].startswith("the camera sends no RTCP Sender Reports: lip sync relies on arrival "
                                              "times, accurate to ±"), gate["verdict"]
            assert len(door["t"]) >= 2 and door["step_s"] == FINE_STEP_S and monitor.task is not None
            skews = [v for v in door["series"]["audio.skew_ppm"] if v is not None]
            assert skews and skews[-1] == pytest.approx(300, abs=60)
            assert set(door["series"]["audio.source"]) <= {None, 1} and 0 in gate["series"]["audio.source"]
            for key in ("video.jitter_ms", "audio.lost", "audio.reordered", "audio.reanchors", "av_correction_ms"):
                assert len(door["series"][key]) == len(door["t"])

            text = (await client.get("/metrics")).text
            assert 'opticlink_camera_connected{camera="door"} 1.0' in text
            assert 'opticlink_sync_source{camera="gate",source="arrival",track="audio"} 1.0' in text
            assert 'opticlink_rtp_packets_lost_total{camera="door",track="audio"}' in text
            assert 'opticlink_recording_active{' not in text  # nothing is recorded here
            line = next(x for x in text.splitlines() if x.startswith('opticlink_sync_skew_ppm{camera="door",'
                                                                    'track="audio"}'))
            assert float(line.split()[-1]) == pytest.approx(300, abs=60)
            assert (await client.get("/api/cameras/nope/diagnostics")).status_code == 404
            anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                          base_url="http://127.0.0.1")
            async with anonymous:
                assert (await anonymous.get("/api/cameras/door/diagnostics")).status_code == 401
    finally:
        await service.stop()
    assert monitor.task is None


def _value(text, prefix):
    line = next((x for x in text.splitlines() if x.startswith(prefix)), None)
    return float(line.split()[-1]) if line is not None else None


@pytest.mark.slow
@pytest.mark.parametrize("simulator", [[small_camera(faults=Faults(drop_at_s=1.0))]], indirect=True)
async def test_counters_keep_counting_across_a_reconnection(simulator):
    service = Service(ServiceConfig(cameras=[CameraConfig(id="door", url=simulator.url("cam1"), talkback=False)]))
    await service.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://127.0.0.1", headers=credentials(service).bearer) as client:
            seen: list[tuple[float, float]] = []

            async def reconnected():
                text = (await client.get("/metrics")).text
                expected = _value(text, 'opticlink_rtp_packets_expected_total{camera="door",track="video"}')
                reconnects = _value(text, 'opticlink_camera_reconnects_total{camera="door"}')
                if expected is not None:
                    seen.append((reconnects, expected))
                return True if reconnects and service.cameras["door"].session.state == "playing" else None

            await _wait(reconnected, 20)
            await asyncio.sleep(1.0)
            await reconnected()
            counts = [expected for _, expected in seen]
            assert seen[-1][0] >= 1 and counts == sorted(counts)  # monotonic though the receiver was rebuilt
            before = [expected for reconnects, expected in seen if reconnects == 0]  # read before the drop (if any)
            assert counts[-1] > max(before, default=0)
    finally:
        await service.stop()
