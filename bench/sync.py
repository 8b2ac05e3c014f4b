"""Lip sync under impairment: our engine against arrival stamping and a static offset, same traffic.

For every profile a simulated camera runs for `--hours` of media time through the network model
and the real receive path (parse, jitter buffer, depacketizer), replayed faster than real time.
The A/V error at every video frame (audio's timeline error minus video's, against the
simulator's true capture times) is scored for three ways of timing the same units:

- `engine`: OpticLink's sync engine;
- `arrival`: each unit stamped with its arrival (a browser player; FFmpeg with
  `-use_wallclock_as_timestamps`);
- `static`: each track's RTP time at the nominal rate from its first arrival (a fixed "audio
  delay" chosen at the start, as generic VMSes do).

Then an end-to-end case over real sockets: the simulator serves av-drift-detector's test video
(built-in audio offset +40 ms) with a 300 ppm audio clock skew and 20 ms jitter, `opticlink
capture` records it, and av-drift-detector measures the result (FFmpeg's own capture of the
same stream is measured beside it). Prints JSON.

    .venv/bin/python bench/sync.py [--hours 2] [--jobs 2] [--quick] [--no-e2e]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from opticlink.sim.faults import Faults
from opticlink.sim.replay import place_by_arrival, place_by_static_offset, place_with_engine, record, score

TARGETS = {"after_first_report_p99_ms": 5.0, "after_first_report_max_ms": 15.0, "before_first_report_max_ms": 40.0,
           "from_2s_after_first_report_max_ms": 5.0, "max_step_ms": 10.0}


def profiles(quick: bool) -> list[tuple[str, Faults]]:
    out = []
    grid = itertools.product((0, 100, 300), (0, 20, 60), (0, 2, 5), (0, 2))
    for i, (skew, jitter, loss, reorder) in enumerate(grid):
        if quick and (jitter, loss, reorder) not in ((0, 0, 0), (60, 5, 2)):
            continue
        out.append((f"skew{skew}-jitter{jitter}-loss{loss}-reorder{reorder}",
                    Faults(audio_skew_ppm=skew, jitter_ms=jitter, loss_pct=loss, reorder_pct=reorder, seed=100 + i)))
    hard = Faults(audio_skew_ppm=300, jitter_ms=20, loss_pct=2)
    extra = {
        "bogus-reports-frozen": {"sender_reports": "frozen"},
        "bogus-reports-jumping": {"sender_reports": "jumping"},
        "camera-reboot": {"reboot_at_s": 1800.0},
        "timestamp-jump": {"timestamp_jump_at_s": 1800.0},
        "late-reports-30s": {"sender_reports": "late", "sr_late_s": 30.0},
        "no-reports": {"sender_reports": "absent"},
        "camera-audio-offset-80ms": {"av_offset_ms": 80.0},
        "wall-clock-skew-50ppm": {"wall_skew_ppm": 50.0},
        "no-rtp-info": {"rtp_info": False},
    }
    for j, (name, changes) in enumerate(extra.items()):
        faults = Faults(**{**asdict(hard), **changes, "seed": 500 + j})
        out.append((name, faults))
    return out


def run_profile(job: tuple[str, Faults, float]) -> dict[str, object]:
    name, faults, seconds = job
    started = time.process_time()
    rec = record(faults, seconds, ordered=True)
    result: dict[str, object] = {"profile": name, "faults": {k: v for k, v in asdict(faults).items()
                                                             if v != getattr(Faults(), k) and k != "seed"}}
    engine_pts = place_with_engine(rec)
    result["engine"] = score(rec, engine_pts, place_with_engine.reanchored).as_dict()  # type: ignore[attr-defined]
    stats = place_with_engine.last_engine.stats()  # type: ignore[attr-defined]
    result["engine_stats"] = {t.kind: {"source": t.source, "skew_ppm": t.skew_ppm, "reanchors": t.reanchors,
                                       "bogus_reports": t.bogus_reports, "fallback_reason": t.fallback_reason}
                              for t in stats.tracks}
    result["arrival"] = score(rec, place_by_arrival(rec)).as_dict()
    result["static"] = score(rec, place_by_static_offset(rec)).as_dict()
    result["units"] = len(rec.truth)
    result["cpu_s"] = round(time.process_time() - started, 1)
    return result


def check(result: dict[str, object]) -> dict[str, bool]:
    engine = result["engine"]
    assert isinstance(engine, dict)
    after, before, settled = engine["after_first_report"], engine["before_first_report"], engine[
        "from_2s_after_first_report"]
    steps = engine["max_step_ms"]
    out = {}
    if after:
        out["after_first_report_p99_ms"] = after["p99_ms"] <= TARGETS["after_first_report_p99_ms"]
        out["after_first_report_max_ms"] = after["max_ms"] <= TARGETS["after_first_report_max_ms"]
    if settled:
        out["from_2s_after_first_report_max_ms"] = settled["max_ms"] <= TARGETS["from_2s_after_first_report_max_ms"]
    if before:
        out["before_first_report_max_ms"] = before["max_ms"] <= TARGETS["before_first_report_max_ms"]
    out["max_step_ms"] = max(steps.values(), default=0.0) <= TARGETS["max_step_ms"]
    return out


def end_to_end(capture_seconds: float = 60.0) -> dict[str, object]:
    import av_drift_detector as avd

    from opticlink.sim.presets import camera
    from opticlink.sim.server import SimulatorServer

    expected_ms = 40.0
    work = Path(tempfile.mkdtemp(prefix="opticlink-e2e-"))
    clip = work / "sync.mkv"
    avd.generate(str(clip), fps="25", duration=capture_seconds + 15, width=640, height=360, sample_rate=8000,
                 audio_codec="pcm", audio_offset=expected_ms / 1000, music=False)
    faults = Faults(audio_skew_ppm=300, jitter_ms=20, seed=7)
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")

    async def run() -> dict[str, object]:
        spec = camera("drift", clip=clip, bitrate=1_500_000, faults=faults)
        async with SimulatorServer([spec], port=0) as server:
            url = server.url("drift")
            ours = await asyncio.create_subprocess_exec(opticlink, "capture", url, "--seconds", str(capture_seconds),
                                                        "-o", str(work / "opticlink.mkv"),
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            await ours.wait()
            theirs = await asyncio.create_subprocess_exec(
                "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", str(capture_seconds),
                "-c:v", "copy", "-c:a", "pcm_s16le", "-y", str(work / "ffmpeg.mkv"))
            await theirs.wait()
        out: dict[str, object] = {"clip_audio_offset_ms": expected_ms, "faults": {"audio_skew_ppm": 300,
                                                                                  "jitter_ms": 20},
                                  "capture_seconds": capture_seconds}
        for name in ("opticlink", "ffmpeg"):
            summary = avd.analyze(str(work / f"{name}.mkv"), capture="file")["summary"]
            mean = summary["mean_ms"]
            out[name] = {"mean_ms": round(mean, 3), "error_ms": round(mean - expected_ms, 3),
                         "stddev_ms": round(summary["stddev_ms"], 3), "skew_ppm": round(summary["skew_ppm"], 2),
                         "frames_measured": summary["measured"]}
        return out

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="media time per profile (default 2)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="a subset of the matrix")
    parser.add_argument("--no-e2e", action="store_true", help="skip the real-socket av-drift-detector case")
    args = parser.parse_args()
    jobs = [(name, faults, args.hours * 3600) for name, faults in profiles(args.quick)]
    results = []
    started = time.time()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for result in pool.imap_unordered(run_profile, jobs):
            results.append(result)
            engine = result["engine"]["after_first_report"] or result["engine"]["before_first_report"]
            print(f"[{len(results)}/{len(jobs)}] {result['profile']}: engine p99 {engine.get('p99_ms')} ms, "
                  f"arrival p99 {(result['arrival']['after_first_report'] or {}).get('p99_ms')} ms, "
                  f"static max {(result['static']['after_first_report'] or {}).get('max_ms')} ms "
                  f"({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    results.sort(key=lambda r: [name for name, _ in profiles(args.quick)].index(r["profile"]))
    for result in results:
        result["meets_targets"] = check(result)
    summary = {}
    for method in ("engine", "arrival", "static"):
        after = [r[method]["after_first_report"] for r in results if r[method]["after_first_report"]]
        before = [r[method]["before_first_report"] for r in results if r[method]["before_first_report"]]
        summary[method] = {
            "worst_p99_after_first_report_ms": max(a["p99_ms"] for a in after),
            "worst_max_after_first_report_ms": max(a["max_ms"] for a in after),
            "worst_max_before_first_report_ms": max((b["max_ms"] for b in before), default=None),
            "worst_step_ms": max(max(r[method]["max_step_ms"].values(), default=0.0) for r in results),
        }
    failed = {r["profile"]: [k for k, ok in r["meets_targets"].items() if not ok] for r in results
              if not all(r["meets_targets"].values())}
    report: dict[str, object] = {
        "benchmark": "sync",
        "media_hours_per_profile": args.hours,
        "profiles": len(results),
        "targets": TARGETS,
        "summary": summary,
        "profiles_missing_targets": failed,
        "results": results,
    }
    if not args.no_e2e:
        print("end-to-end: simulator -> opticlink capture / ffmpeg -> av-drift-detector", file=sys.stderr, flush=True)
        report["end_to_end"] = end_to_end()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
