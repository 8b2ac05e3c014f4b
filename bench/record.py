"""Recording cost: CPU seconds per camera-minute, ours against `ffmpeg -c copy -f segment`, same streams.

Starts the simulator in its own process with K cameras (1920x1080 H.264 at 4 Mbit/s plus G.711
µ-law), then, in alternating rounds, records all K with one OpticLink process (RTSP, RTP, jitter
buffers, sync engine, frame bus, live feed with no viewer, recorder: segments and their index in
SQLite) and with K `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60`
processes (QuickTime segments: FFmpeg's other containers refuse G.711). CPU time is each child's own
(user + system, from wait4), so the simulator's cost is not counted. Also: bytes written against
bytes received, and the write calls that reached the operating system per camera-minute.
OpticLink's CPU is given twice: the whole process (Python's start-up, about 2 CPU-seconds, included)
and steady state (from PLAY to stop, all threads). Prints JSON; the figure that matters is the
ratio (target <= 1.0).

    .venv/bin/python bench/record.py [--cameras 4] [--seconds 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import _wait_cpu  # a child's own CPU seconds, as bench/ingest.py counts them


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in (".mov", ".mkv"))


def run_ours(urls: list[str], seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-record-") as folder:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", "--seconds", str(seconds), "--out", folder,
                                 *urls], stdout=subprocess.PIPE, text=True)
        cpu = _wait_cpu(proc)
        result = json.loads(proc.stdout.read())
        result["bytes_on_disk"] = _size(Path(folder))
    if proc.returncode != 0 or result["frames"] < len(urls) * seconds * 20:
        raise RuntimeError(f"our recorder did not record the streams: {result}")
    return {"cpu_s": cpu, **result}


def run_ffmpeg(urls: list[str], seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ffmpeg-") as folder:
        procs = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
                                   "-map", "0", "-c", "copy", "-t", str(seconds), "-f", "segment",
                                   "-segment_time", "60", "-segment_format", "mov", f"{folder}/cam{i}-%03d.mov"],
                                  stderr=subprocess.PIPE)
                 for i, url in enumerate(urls)]
        cpu = sum(_wait_cpu(p) for p in procs)
        failed = [(p.returncode, p.stderr.read()[-300:]) for p in procs if p.returncode != 0]
        written = _size(Path(folder))
    if failed:
        raise RuntimeError(f"ffmpeg failed: {failed}")
    return {"cpu_s": cpu, "bytes_on_disk": written}


async def worker(urls: list[str], seconds: float, out: str) -> None:
    from opticlink.api.config import CameraConfig, ServiceConfig
    from opticlink.api.service import Service

    config = ServiceConfig(cameras=[CameraConfig(id=f"cam{i}", url=url, talkback=False) for i, url in enumerate(urls)],
                           data_dir=Path(out), database="file", record=True, min_free_gb=0)
    service = Service(config)
    await service.start()
    await asyncio.gather(*(r.session.wait_playing(20) for r in service.cameras.values()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(seconds)
    await service.stop()
    after = resource.getrusage(resource.RUSAGE_SELF)
    steady = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    stats = [r.recorder.stats for r in service.cameras.values() if r.recorder is not None]
    received = 0
    for runtime in service.cameras.values():
        if runtime.session.ingest is not None:
            received += sum(s.receiver.stats.bytes for s in runtime.session.ingest.states.values())
    print(json.dumps({"steady_cpu_s": round(steady, 3), "frames": sum(s.frames for s in stats),
                      "segments": sum(s.segments for s in stats),
                      "writes": sum(s.writes for s in stats), "bytes_written": sum(s.bytes for s in stats),
                      "bytes_received": received, "dropped": sum(s.dropped for s in stats)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=18564)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.urls, args.seconds, args.out))
        return
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    sim = subprocess.Popen([opticlink, "sim", "--cameras", str(args.cameras), "--port", str(args.port), "--size",
                            "1920x1080", "--bitrate", "4000000", "--audio", "pcmu"], stdout=subprocess.PIPE, text=True)
    try:
        urls = [sim.stdout.readline().strip() for _ in range(args.cameras)]
        ours, theirs = [], []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}: OpticLink recording {args.cameras} cameras for "
                  f"{args.seconds:g} s", file=sys.stderr, flush=True)
            ours.append(run_ours(urls, args.seconds))
            print(f"round {round_ + 1}/{args.rounds}: ffmpeg -c copy -f segment of the same cameras", file=sys.stderr,
                  flush=True)
            theirs.append(run_ffmpeg(urls, args.seconds))
    finally:
        sim.terminate()
        sim.wait()
    camera_minutes = args.cameras * args.seconds / 60
    ours_cpm = statistics.median(r["cpu_s"] for r in ours) / camera_minutes
    steady_cpm = statistics.median(r["steady_cpu_s"] for r in ours) / camera_minutes
    ffmpeg_cpm = statistics.median(r["cpu_s"] for r in theirs) / camera_minutes
    last = ours[-1]
    print(json.dumps({
        "benchmark": "record",
        "cameras": args.cameras,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "stream": "1920x1080 H.264 4 Mbit/s + G.711 PCMU 8 kHz, RTSP over TCP",
        "note": "CPU of whole processes, start-up included, median of rounds",
        "opticlink_cpu_s_per_camera_minute": round(ours_cpm, 3),
        "ffmpeg_segment_cpu_s_per_camera_minute": round(ffmpeg_cpm, 3),
        "ratio_opticlink_to_ffmpeg": round(ours_cpm / ffmpeg_cpm, 2),
        "opticlink_steady_cpu_s_per_camera_minute": round(steady_cpm, 3),
        "ratio_steady_opticlink_to_ffmpeg": round(steady_cpm / ffmpeg_cpm, 2),
        "bytes_written_per_byte_received": round(last["bytes_written"] / max(1, last["bytes_received"]), 3),
        "write_calls_per_camera_minute": round(last["writes"] / camera_minutes, 1),
        "rounds_detail": {"opticlink": ours, "ffmpeg": theirs},
        "machine": {"cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }, indent=2))


if __name__ == "__main__":
    main()
