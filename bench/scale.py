"""Scaling: the whole service with K cameras, each recorded and watched live, against K FFmpeg recorders.

For each K in `--cameras` (default 8,16): the simulator serves K cameras (1920x1080 H.264 at
4 Mbit/s plus G.711 µ-law, encoded once and cached) in its own process; `opticlink serve` runs in
its own process with those K cameras, `record: true` into a temporary data directory; one
WebSocket viewer per camera, all in a third process, reads every message and counts the video
frames and the gaps in their presentation times. After `--warmup` seconds, the service's CPU
(user + system of the process and its descendants, from /proc) is taken over `--seconds` of
steady state, with its RSS at the end; frames lost are read from the service's own counters over
the same window (viewer queues, recorder gaps, RTP losses) and from the viewers. Then, on the same
streams, K `ffmpeg -rtsp_transport tcp -i URL -map 0 -c copy -f segment` processes, measured the
same way. The simulator's and the viewers' CPU are not counted. Also: the service's per-frame hub
latency (`/api/hub/latency`, camera session to WebSocket write) over the window, and linearity:
the service's CPU per camera at the largest K over that at the smallest (target <= 1.1).
Prints JSON; the figures that matter are ratios taken in the same run.

    .venv/bin/python bench/scale.py [--cameras 8,16] [--seconds 20] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from access import admin, bench_env

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SIM_ARGS = ("--size", "1920x1080", "--bitrate", "4000000", "--audio", "pcmu")


# --- /proc -------------------------------------------------------------------------------------------

def _tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their descendants (threads included)."""
    total = 0
    for root in pids:
        for p in _tree(root):
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            except (OSError, IndexError, ValueError):
                pass
    return total / TICK


def machine_idle() -> tuple[float, float]:
    """(idle + iowait, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def _idle_share(a: tuple[float, float], b: tuple[float, float]) -> float:
    return round((b[0] - a[0]) / max(1, b[1] - a[1]), 3)


def rss_mb(pids: list[int]) -> float:
    total = 0
    for root in pids:
        for p in _tree(root):
            try:
                with open(f"/proc/{p}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                pass
    return total / 2**20


# --- viewers (their own process) ---------------------------------------------------------------------

async def _viewers(base: str, token: str, cameras: list[str], seconds: float) -> None:
    """One WebSocket viewer per camera, reading every message for `seconds`: video frames counted,
    and gaps in their presentation times (a step over 1.5 frame intervals) with the frames missing."""
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    stats = {c: {"messages": 0, "video_frames": 0, "bytes": 0, "gaps": 0, "missing": 0, "discontinuities": 0}
             for c in cameras}

    async def viewer(camera: str) -> None:
        s = stats[camera]
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET /api/cameras/{camera}/live HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"{camera}: {head[:200]!r}")
        video_track: int | None = None
        last_pts: float | None = None
        steps: list[float] = []
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(n)
            s["bytes"] += n + 2
            opcode = b0 & 0x0F
            if opcode == 8:
                return
            if opcode != 2 or not payload:
                continue
            s["messages"] += 1
            if payload[0] == 1:  # config: which track is video
                tracks = json.loads(payload[1:]).get("tracks", [])
                for i, t in enumerate(tracks):
                    if t.get("kind") == "video" or str(t.get("codec", "")).startswith(("avc", "hvc", "hev")):
                        video_track = t.get("track", t.get("index", i))
                continue
            if payload[0] != 2 or len(payload) < 24:
                continue
            _, track, flags, pts, _captured = struct.unpack_from("<BBBxxxxxdd", payload)
            if video_track is None or track != video_track:
                continue
            s["video_frames"] += 1
            if flags & 2:
                s["discontinuities"] += 1
            if last_pts is not None and pts > last_pts:
                step = pts - last_pts
                if len(steps) < 50:
                    steps.append(step)
                interval = statistics.median(steps)
                if len(steps) >= 10 and step > 1.5 * interval:
                    s["gaps"] += 1
                    s["missing"] += round(step / interval) - 1
            last_pts = pts

    tasks = [asyncio.create_task(viewer(c)) for c in cameras]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
    print(json.dumps({"viewers": stats, "errors": errors}))


# --- runs --------------------------------------------------------------------------------------------

def _first_url(proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"(https?|rtsp)://\S+", line)
        if match:
            return match.group(0)
    raise RuntimeError(f"no address from {proc.args}")


def wait_playing(base: str, token: str, timeout: float = 60) -> None:
    """Until every camera of the service at `base` plays (RuntimeError after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c["state"] == "playing" for c in _get(base, "/api/cameras", token)):  # type: ignore[union-attr]
            return
        time.sleep(0.5)
    raise RuntimeError(f"the cameras did not all start playing in {timeout:g} s")


def _get(base: str, path: str, token: str, method: str = "GET") -> object:
    import httpx

    r = httpx.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return r.json() if r.content else None


def _losses(cameras: list[dict]) -> dict[str, int]:
    out = {"viewer_dropped_video": 0, "viewer_dropped_audio": 0, "recorder_dropped": 0, "rtp_lost": 0,
           "live_frames": 0, "recorded_frames": 0}
    for c in cameras:
        for v in c.get("viewers") or []:
            out["viewer_dropped_video"] += v["dropped_video"]
            out["viewer_dropped_audio"] += v["dropped_audio"]
        rec = c.get("recording") or {}
        out["recorder_dropped"] += rec.get("dropped", 0)
        out["recorded_frames"] += rec.get("frames", 0)
        out["live_frames"] += c.get("frames", 0)
        for r in (c.get("reception") or {}).values():
            out["rtp_lost"] += r.get("lost", 0)
    return out


def run_ours(urls: list[str], warmup: float, seconds: float, port: int, profile: str | None = None,
             sim: int | None = None) -> dict:
    k = len(urls)
    data = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    cams = "".join(f"  - id: cam{i}\n    url: {u}\n    talkback: false\n" for i, u in enumerate(urls))
    (data / "cameras.yaml").write_text(f"data_dir: {data}\nrecord: true\nmin_free_gb: 0\ntls: false\n"
                                       f"cameras:\n{cams}")
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    cmd = [opticlink, "serve", str(data / "cameras.yaml"), "--port", str(port)]
    if profile:
        spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        cmd = [spy, "record", "--threads", "--subprocesses", "-r", "50", "-f", "raw", "-o", profile, "--", *cmd]
    env = bench_env(data)  # DELETE /api/hub/latency, below, is a bench route
    service = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    viewers = None
    try:
        base = _first_url(service)
        root = service.pid if not profile else _tree(service.pid)[-1]  # under py-spy: the service is its child
        token = admin(data).token
        names = [f"cam{i}" for i in range(k)]
        wait_playing(base, token)
        viewers = subprocess.Popen([sys.executable, __file__, "--viewers-child", "--seconds",
                                    str(warmup + seconds + 3), "--token", token, base, *names],
                                   stdout=subprocess.PIPE, text=True)
        time.sleep(warmup)
        before = _losses(_get(base, "/api/cameras", token))
        _get(base, "/api/hub/latency", token, "DELETE")
        c0, t0, s0, m0 = cpu_s([root]), time.monotonic(), cpu_s([sim] if sim else []), machine_idle()
        time.sleep(seconds)
        c1, t1, s1, m1 = cpu_s([root]), time.monotonic(), cpu_s([sim] if sim else []), machine_idle()
        rss = rss_mb([root])
        after = _losses(_get(base, "/api/cameras", token))
        latency = _get(base, "/api/hub/latency", token)
        seen = json.loads(viewers.communicate(timeout=60)[0])
    finally:
        service.send_signal(signal.SIGINT if profile else signal.SIGTERM)
        try:
            service.wait(60)
        except subprocess.TimeoutExpired:
            service.kill()
        if viewers is not None and viewers.poll() is None:
            viewers.kill()
        shutil.rmtree(data, ignore_errors=True)
    window = {key: after[key] - before[key] for key in after}
    v = seen["viewers"].values()
    return {"cpu_s": round(c1 - c0, 3), "wall_s": round(t1 - t0, 2), "rss_mb": round(rss, 1),
            "simulator_cpu_share_of_one_core": round((s1 - s0) / (t1 - t0), 2),
            "machine_idle_share": _idle_share(m0, m1), "window": window,
            "hub_latency_ms": {key: round(val, 2) if isinstance(val, float) else val for key, val in latency.items()},
            "viewers": {"video_frames_min": min(x["video_frames"] for x in v),
                        "video_frames_total": sum(x["video_frames"] for x in v),
                        "gaps": sum(x["gaps"] for x in v), "frames_missing": sum(x["missing"] for x in v),
                        "discontinuities": sum(x["discontinuities"] for x in v), "errors": seen["errors"]}}


def run_ffmpeg(urls: list[str], warmup: float, seconds: float) -> dict:
    folder = tempfile.mkdtemp(prefix="bench-scale-ffmpeg-")
    procs = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-map", "0",
                               "-c", "copy", "-f", "segment", "-segment_time", "60", "-segment_format", "mov",
                               f"{folder}/cam{i}-%03d.mov"], stderr=subprocess.PIPE)
             for i, url in enumerate(urls)]
    try:
        time.sleep(warmup)
        pids = [p.pid for p in procs]
        c0, t0, m0 = cpu_s(pids), time.monotonic(), machine_idle()
        time.sleep(seconds)
        c1, t1, m1 = cpu_s(pids), time.monotonic(), machine_idle()
        rss = rss_mb(pids)
        dead = [(p.returncode, p.stderr.read()[-300:]) for p in procs if p.poll() is not None]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        written = sum(f.stat().st_size for f in Path(folder).glob("*.mov"))
        shutil.rmtree(folder, ignore_errors=True)
    if dead:
        raise RuntimeError(f"ffmpeg exited early: {dead}")
    return {"cpu_s": round(c1 - c0, 3), "wall_s": round(t1 - t0, 2), "rss_mb": round(rss, 1),
            "bytes_on_disk": written, "machine_idle_share": _idle_share(m0, m1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", default="8,16", help="camera counts, comma-separated (default 8,16)")
    parser.add_argument("--seconds", type=float, default=20.0, help="steady-state window (default 20)")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up before the window (default 10)")
    parser.add_argument("--port", type=int, default=18574, help="the service's HTTP port")
    parser.add_argument("--sim-port", type=int, default=18584)
    parser.add_argument("--profile", metavar="FILE",
                        help="run the service under py-spy (threads, 50 Hz) and write collapsed stacks to FILE; "
                             "CPU figures are then inflated by the sampling, and no FFmpeg run is made")
    parser.add_argument("--viewers-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewers_child:
        asyncio.run(_viewers(args.rest[0], args.token, args.rest[1:], args.seconds))
        return
    counts = [int(x) for x in args.cameras.split(",")]
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    sim = subprocess.Popen([opticlink, "sim", "--cameras", str(max(counts)), "--port", str(args.sim_port), *SIM_ARGS],
                           stdout=subprocess.PIPE, text=True)
    runs = []
    try:
        urls = [sim.stdout.readline().strip() for _ in range(max(counts))]
        for k in counts:
            print(f"K={k}: opticlink serve, {k} cameras recorded and watched, {args.warmup:g} s warm-up + "
                  f"{args.seconds:g} s", file=sys.stderr, flush=True)
            ours = run_ours(urls[:k], args.warmup, args.seconds, args.port, args.profile, sim.pid)
            theirs = None
            if not args.profile:
                print(f"K={k}: {k} x ffmpeg -c copy -f segment", file=sys.stderr, flush=True)
                theirs = run_ffmpeg(urls[:k], args.warmup, args.seconds)
            minutes = k * ours["wall_s"] / 60
            row = {"cameras": k,
                   "opticlink_cpu_s_per_camera_minute": round(ours["cpu_s"] / minutes, 3),
                   "opticlink_rss_mb_per_camera": round(ours["rss_mb"] / k, 1),
                   "opticlink_cpu_share_of_one_core": round(ours["cpu_s"] / ours["wall_s"], 2),
                   "machine_idle_share": ours["machine_idle_share"],  # near 0: the service was starved
                   "frames_lost": {**{key: val for key, val in ours["window"].items() if not key.endswith("frames")},
                                   "viewer_side_gaps": ours["viewers"]["gaps"],
                                   "viewer_side_frames_missing": ours["viewers"]["frames_missing"]},
                   "frames_in_window": {"live": ours["window"]["live_frames"],
                                        "recorded": ours["window"]["recorded_frames"]},
                   "hub_latency_ms": ours["hub_latency_ms"], "opticlink": ours}
            if theirs is not None:
                ffmpeg_cpm = theirs["cpu_s"] / (k * theirs["wall_s"] / 60)
                row |= {"ffmpeg_segment_cpu_s_per_camera_minute": round(ffmpeg_cpm, 3),
                        "ffmpeg_rss_mb_per_camera": round(theirs["rss_mb"] / k, 1),
                        "ratio_opticlink_to_ffmpeg": round(ours["cpu_s"] / minutes / max(ffmpeg_cpm, 1e-9), 2),
                        "ffmpeg": theirs}
            runs.append(row)
    finally:
        sim.terminate()
        sim.wait()
    first, last = runs[0], runs[-1]
    print(json.dumps({
        "benchmark": "scale",
        "stream": "1920x1080 H.264 4 Mbit/s + G.711 PCMU 8 kHz, RTSP over TCP; each camera recorded + 1 live viewer",
        "seconds": args.seconds, "warmup": args.warmup,
        "note": "steady-state CPU (user+system) of the service process tree from /proc; simulator and viewers "
                "not counted; ffmpeg: K `-c copy -f segment` processes on the same streams, same window",
        "linearity_cpu_per_camera_largest_over_smallest": round(
            last["opticlink_cpu_s_per_camera_minute"] / first["opticlink_cpu_s_per_camera_minute"], 2),
        "runs": runs,
        "profile": args.profile,
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }, indent=2))


if __name__ == "__main__":
    main()
