"""Soak: the service's memory over a long run, with N cameras each recorded and watched live.

The simulator serves N cameras (`--size`, `--bitrate`, G.711 µ-law, and `--faults`: by default the
20 ms of jitter and 1 % loss under which issue 15 saw RSS grow) in its own process; `opticlink serve`
runs in its own process with those N cameras, `record: true` into a temporary data directory; one
WebSocket viewer per camera (bench/scale.py's, all in a third process) reads every message. After
`--warmup` seconds the service's RSS (its process tree, from /proc) is sampled every `--every`
seconds for `--minutes`, a progress line per sample on stderr; a least-squares line through the
samples gives the growth, extrapolated to MB per camera per day (target <= 1). Prints JSON with the
samples. A bounded buffer that is still filling during the window (a ring of an hour of samples)
counts as growth here: the warm-up must outlast it, or the buffer must be small.

    .venv/bin/python bench/soak.py [--cameras 16] [--minutes 30] [--warmup 120] [--no-viewers]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import scale
from access import admin
from scale import _first_url, _get, _losses, cpu_s, rss_mb, wait_playing

TARGET_MB_PER_CAMERA_DAY = 1.0


def slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line through (x, y) points: (slope, intercept)."""
    if len(points) < 2:
        return 0.0, points[0][1] if points else 0.0
    b, a = np.polyfit(*zip(*points, strict=True), 1)
    return float(b), float(a)


def soak(urls: list[str], args: argparse.Namespace) -> dict:
    k = len(urls)
    data = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    cams = "".join(f"  - id: cam{i}\n    url: {u}\n" for i, u in enumerate(urls))
    (data / "cameras.yaml").write_text(f"data_dir: {data}\nrecord: true\nmin_free_gb: 0\ntls: false\n"
                                       f"cameras:\n{cams}")
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    env = {**os.environ, "OPTICLINK_DATA_DIR": str(data)}
    service = subprocess.Popen([opticlink, "serve", str(data / "cameras.yaml"), "--port", str(args.port)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    viewers = None
    samples: list[dict] = []
    try:
        base = _first_url(service)
        token = admin(data).token
        names = [f"cam{i}" for i in range(k)]
        wait_playing(base, token)
        window = args.minutes * 60
        if not args.no_viewers:
            viewers = subprocess.Popen([sys.executable, scale.__file__, "--viewers-child", "--seconds",
                                        str(args.warmup + window + args.every + 5), "--token", token, base, *names],
                                       stdout=subprocess.PIPE, text=True)
        print(f"soak: {k} cameras recorded{'' if args.no_viewers else ' and watched'}; {args.warmup:g} s warm-up, "
              f"then RSS every {args.every:g} s for {args.minutes:g} min", file=sys.stderr, flush=True)
        time.sleep(args.warmup)
        before = _losses(_get(base, "/api/cameras", token))
        t0, c0 = time.monotonic(), cpu_s([service.pid])
        while True:
            t = time.monotonic() - t0
            rss = rss_mb([service.pid])
            playing = sum(c["state"] == "playing" for c in _get(base, "/api/cameras", token))
            samples.append({"t_s": round(t, 1), "rss_mb": round(rss, 2), "playing": playing})
            line = ""
            if len(samples) >= 2:
                b, _ = slope([(s["t_s"], s["rss_mb"]) for s in samples])
                line = f", slope so far {b * 3600:+.2f} MB/h = {b * 86400 / k:+.2f} MB per camera per day"
            print(f"  {t / 60:5.1f} min  RSS {rss:8.2f} MB  {playing}/{k} playing{line}", file=sys.stderr, flush=True)
            if t >= window or service.poll() is not None:
                break
            time.sleep(max(0.0, t0 + len(samples) * args.every - time.monotonic()))
        wall, cpu = time.monotonic() - t0, cpu_s([service.pid]) - c0
        after = _losses(_get(base, "/api/cameras", token))
        seen = json.loads(viewers.communicate(timeout=args.every + 60)[0]) if viewers is not None else None
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(60)
        except subprocess.TimeoutExpired:
            service.kill()
        if viewers is not None and viewers.poll() is None:
            viewers.kill()
        shutil.rmtree(data, ignore_errors=True)
    b, a = slope([(s["t_s"], s["rss_mb"]) for s in samples])
    per_day = b * 86400 / k
    out = {"rss_start_mb": samples[0]["rss_mb"], "rss_end_mb": samples[-1]["rss_mb"],
           "slope_mb_per_hour": round(b * 3600, 3), "intercept_mb": round(a, 2),
           "mb_per_camera_per_day": round(per_day, 3), "target_mb_per_camera_per_day": TARGET_MB_PER_CAMERA_DAY,
           "ok": per_day <= TARGET_MB_PER_CAMERA_DAY,
           "service_cpu_share_of_one_core": round(cpu / wall, 2),
           "window": {key: after[key] - before[key] for key in after}, "samples": samples}
    if seen is not None:
        v = seen["viewers"].values()
        out["viewers"] = {"video_frames_min": min(x["video_frames"] for x in v),
                          "video_frames_total": sum(x["video_frames"] for x in v),
                          "gaps": sum(x["gaps"] for x in v), "errors": seen["errors"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=16, help="simulated cameras (default 16)")
    parser.add_argument("--minutes", type=float, default=30.0, help="the sampled window (default 30)")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds before the first sample (default 120)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between RSS samples (default 30)")
    parser.add_argument("--size", default="640x360", help="the cameras' picture (default 640x360)")
    parser.add_argument("--bitrate", default="800000", help="their video bit rate, bit/s (default 800000)")
    parser.add_argument("--faults", default="jitter_ms=20,loss_pct=1",
                        help="the simulator's faults (default jitter_ms=20,loss_pct=1; '' for none)")
    parser.add_argument("--no-viewers", action="store_true", help="record only, no live viewer (issue 15's case)")
    parser.add_argument("--port", type=int, default=18594, help="the service's HTTP port")
    parser.add_argument("--sim-port", type=int, default=18604)
    args = parser.parse_args()
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    sim_args = ["--size", args.size, "--bitrate", args.bitrate, "--audio", "pcmu"]
    if args.faults:
        sim_args += ["--faults", args.faults]
    sim = subprocess.Popen([opticlink, "sim", "--cameras", str(args.cameras), "--port", str(args.sim_port),
                            *sim_args], stdout=subprocess.PIPE, text=True)
    try:
        urls = [sim.stdout.readline().strip() for _ in range(args.cameras)]
        result = soak(urls, args)
    finally:
        sim.terminate()
        sim.wait()
    print(json.dumps({
        "benchmark": "soak",
        "stream": f"{args.size} H.264 {args.bitrate} bit/s + G.711 PCMU 8 kHz, RTSP over TCP, faults "
                  f"{args.faults or 'none'}; each camera recorded" + ("" if args.no_viewers else " + 1 live viewer"),
        "cameras": args.cameras, "minutes": args.minutes, "warmup_s": args.warmup, "every_s": args.every,
        "note": "RSS of the service's process tree from /proc; growth is the least-squares slope of the samples "
                "after the warm-up, extrapolated to a day and divided by the cameras",
        **result,
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }, indent=2))


if __name__ == "__main__":
    main()
