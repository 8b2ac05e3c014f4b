"""Ingest cost: CPU seconds per camera-minute, ours against `ffmpeg -c copy`, on the same streams.

Starts the simulator in its own process with K cameras (1920x1080 H.264 at 4 Mbit/s plus G.711
µ-law), then, in alternating rounds, ingests all K with one OpticLink process (RTSP, RTP parsing,
jitter buffers, depacketizers, receiver reports) and with K `ffmpeg -rtsp_transport tcp -i URL -c
copy -f null -` processes. CPU time is each child's own (user + system, from wait4), so the
simulator's cost is not counted. Prints JSON; the figure that matters is the ratio.

    .venv/bin/python bench/ingest.py [--cameras 4] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time


def _wait_cpu(proc: subprocess.Popen) -> float:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def run_ours(urls: list[str], seconds: float) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, __file__, "--worker", "--seconds", str(seconds), *urls],
                            stdout=subprocess.PIPE, text=True)
    cpu = _wait_cpu(proc)
    result = json.loads(proc.stdout.read())
    if proc.returncode != 0 or result["video_units"] < len(urls) * seconds * 20:
        raise RuntimeError(f"our ingest did not receive the streams: {result}")
    return {"cpu_s": cpu, **result}


def run_ffmpeg(urls: list[str], seconds: float) -> dict[str, float]:
    procs = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                               "-t", str(seconds), "-f", "null", "-"], stderr=subprocess.PIPE) for url in urls]
    cpu = sum(_wait_cpu(p) for p in procs)
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        raise RuntimeError(f"ffmpeg failed: {failed}")
    return {"cpu_s": cpu}


async def worker(urls: list[str], seconds: float) -> None:
    from opticlink.camera.session import CameraSession
    from opticlink.rtsp.client import ClientConfig

    counts = {"video_units": 0, "audio_units": 0}

    def on_unit(track: int, unit) -> None:
        counts["video_units" if unit.config.__class__.__name__ == "VideoConfig" else "audio_units"] += 1

    sessions = [CameraSession(ClientConfig(url), on_unit=on_unit, reconnect=False) for url in urls]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.gather(*(s.wait_playing(20) for s in sessions))
    await asyncio.sleep(seconds)
    for session in sessions:
        await session.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=18554)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.urls, args.seconds))
        return
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    sim = subprocess.Popen([opticlink, "sim", "--cameras", str(args.cameras), "--port", str(args.port), "--size",
                            "1920x1080", "--bitrate", "4000000", "--audio", "pcmu"], stdout=subprocess.PIPE, text=True)
    try:
        urls = [sim.stdout.readline().strip() for _ in range(args.cameras)]
        ours, theirs = [], []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}: OpticLink ingest of {args.cameras} cameras for "
                  f"{args.seconds:g} s", file=sys.stderr, flush=True)
            ours.append(run_ours(urls, args.seconds))
            print(f"round {round_ + 1}/{args.rounds}: ffmpeg -c copy of the same cameras", file=sys.stderr, flush=True)
            theirs.append(run_ffmpeg(urls, args.seconds))
    finally:
        sim.terminate()
        sim.wait()
    camera_minutes = args.cameras * args.seconds / 60
    ours_cpm = statistics.median(r["cpu_s"] for r in ours) / camera_minutes
    ffmpeg_cpm = statistics.median(r["cpu_s"] for r in theirs) / camera_minutes
    print(json.dumps({
        "benchmark": "ingest",
        "cameras": args.cameras,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "stream": "1920x1080 H.264 4 Mbit/s + G.711 PCMU 8 kHz, RTSP over TCP",
        "note": "CPU of whole processes, start-up included, median of rounds",
        "opticlink_cpu_s_per_camera_minute": round(ours_cpm, 3),
        "ffmpeg_copy_cpu_s_per_camera_minute": round(ffmpeg_cpm, 3),
        "ratio_opticlink_to_ffmpeg": round(ours_cpm / ffmpeg_cpm, 2),
        "rounds_detail": {"opticlink": ours, "ffmpeg": theirs},
        "machine": {"cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }, indent=2))


if __name__ == "__main__":
    main()
