"""Live view in headless Chromium: our player against the baseline, with the page kept busy.

For each camera case, a simulator camera and the service (one camera each, so nothing else loads
the machine) run on loopback; the bench page plays it for `--seconds` with the main thread
blocked 100 ms out of every 300 ms, first with our player, then with the baseline (main-thread
audio through AudioBufferSourceNodes at 8 kHz, video by timers). Reported for each: audio
underruns, |A/V offset at presentation| p50/p99, capture-to-presentation latency p50/p95.
Then the server alone: per-frame hub latency (camera session to WebSocket write) with 16
viewers. Then the screen judged (`tests/live/judge.py`): the skewed, jittery camera serves
av-drift-detector's clip, the page records its own tab while our player plays it and then while
Chromium's `<video>` plays the same clip, and av-drift-detector measures both parts of the one
recording. Prints JSON.

    .venv/bin/python bench/live.py [--seconds 60] [--viewers 16] [--cases skewed-jittery,clean,hub,judge]
    .venv/bin/python bench/live.py --cases wall [--wall-jank none,5,20]   # the walls (bench/wall.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from access import Admin, admin, data_dir_env

STEADY_S = 6.0
READ_STATS = """() => {
  const player = document.getElementById('player');
  const s = player.stats || {};
  const samples = player.takeSamples ? player.takeSamples() : {avOffsets: [], latencies: []};
  return {underruns: s.underruns ?? null, shown: s.framesShown ?? 0, avOffsets: samples.avOffsets,
          latencies: samples.latencies, bufferMs: s.bufferMs ?? null, blocked: window.blocked,
          underrunTimes: s.underrunTimes ?? null, targetBufferMs: s.targetBufferMs ?? null,
          outputLatencyMs: s.outputLatencyMs ?? null, dropped: s.framesDropped ?? null,
          presentation: s.presentation ?? null, videoArrivalMs: s.videoArrivalMs ?? null,
          audioArrivalMs: s.audioArrivalMs ?? null};
}"""


def summary(values: list[float], absolute: bool = False) -> dict[str, float] | None:
    if not values:
        return None
    a = np.abs(values) if absolute else np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "count": len(a)}


async def play(url: str, seconds: float, signed: Admin) -> dict[str, object]:
    """Play one bench page; A/V offsets and latencies are collected over the whole run."""
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page()
        await page.context.add_cookies([signed.browser_cookie(url)])
        await page.goto(url)
        offsets: list[float] = []
        latencies: list[float] = []
        steady: list[float] = []  # latencies from STEADY_S on: the start (page load, first GOP) left out
        started = time.monotonic()
        stats: dict = {}
        while time.monotonic() - started < seconds:
            await asyncio.sleep(2.0)
            stats = await page.evaluate(READ_STATS)
            offsets += stats["avOffsets"]
            latencies += stats["latencies"]
            if time.monotonic() - started > STEADY_S + 2.0:
                steady += stats["latencies"]
        await browser.close()
    return {"underruns": stats.get("underruns"), "underrun_times_s": stats.get("underrunTimes"),
            "frames_shown": stats.get("shown"), "frames_dropped": stats.get("dropped"),
            "main_thread_blocks": stats.get("blocked"), "audio_buffer_ms": stats.get("bufferMs"),
            "target_buffer_ms": stats.get("targetBufferMs"), "output_latency_ms": stats.get("outputLatencyMs"),
            "presentation": stats.get("presentation"),
            "capture_to_worker_ms": {"video": stats.get("videoArrivalMs"), "audio": stats.get("audioArrivalMs")},
            "av_offset_at_presentation_ms": summary(offsets, absolute=True),
            "capture_to_presentation_ms": summary(latencies),
            f"capture_to_presentation_from_{STEADY_S:g}s_ms": summary(steady)}


async def _started(*args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    """An `opticlink` verb in its own process, and the first address it prints."""
    import os
    import re

    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    proc = await asyncio.create_subprocess_exec(opticlink, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL, env=env)
    line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
    return proc, re.search(r"(https?|rtsp)://\S+", line).group(0)


@contextlib.asynccontextmanager
async def camera_and_service(*sim_args: str) -> AsyncIterator[tuple[str, Admin]]:
    """A camera (`opticlink sim`) and the service (`opticlink serve`) for it as `cam`, each in its
    own process, settled; yields the service's base URL and an admin signed in to it."""
    sim, url = await _started("sim", "--port", "0", *sim_args)
    config = Path(tempfile.mkdtemp()) / "cameras.yaml"
    config.write_text(f"cameras:\n  - id: cam\n    url: {url}\n")
    data, env = data_dir_env()
    service, base = await _started("serve", str(config), "--port", "0", env=env)
    try:
        await asyncio.sleep(3)  # the camera session settles
        yield base, admin(data)
    finally:
        for proc in (service, sim):
            proc.terminate()
            await proc.wait()


async def camera_case(name: str, faults: str, seconds: float,
                      players: tuple[str, ...] = ("ours", "baseline")) -> dict[str, object]:
    """Each player in turn on one camera, with the page kept busy."""
    out: dict[str, object] = {"camera": name, "faults": faults}
    async with camera_and_service(*(["--faults", faults] if faults else [])) as (base, signed):
        for player in players:
            print(f"{name}: {player} player, {seconds:g} s, main thread blocked 100 ms / 300 ms",
                  file=sys.stderr, flush=True)
            out[player] = await play(f"{base}/static/bench/live.html?camera=cam&player={player}&block=1", seconds,
                                     signed)
    return out


async def _viewers(url: str, token: str, count: int, seconds: float) -> None:
    """Run in a child process: `count` WebSocket viewers reading everything for `seconds`.

    They complete the handshake and then read and discard bytes, costing almost no CPU, so the
    server's latency is its own and not a wait for the viewers' parsing."""
    import base64
    import os
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    received = [0] * count

    async def viewer(i: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        while chunk := await reader.read(1 << 20):
            received[i] += len(chunk)

    tasks = [asyncio.create_task(viewer(i)) for i in range(count)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(received))


async def hub_case(viewers: int, seconds: float) -> dict[str, object]:
    """The server alone in this process; the camera and the viewers are other processes."""
    import os

    import httpx

    from opticlink.api.config import CameraConfig, ServiceConfig
    from opticlink.api.server import running

    print(f"hub: {viewers} WebSocket viewers for {seconds:g} s", file=sys.stderr, flush=True)
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    sim = await asyncio.create_subprocess_exec(opticlink, "sim", "--port", "0", "--bitrate", "1500000",
                                               stdout=asyncio.subprocess.PIPE)
    try:
        url = (await sim.stdout.readline()).decode().strip()
        config = ServiceConfig(cameras=[CameraConfig(id="cam", url=url)], port=0)
        async with running(config) as (service, base):
            signed = admin(service)
            await asyncio.sleep(2)
            clients = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--viewers-child", str(viewers), "--seconds", str(seconds + 2),
                "--token", signed.token, base.replace("http", "ws") + "/api/cameras/cam/live",
                stdout=asyncio.subprocess.PIPE)
            await asyncio.sleep(2)
            async with httpx.AsyncClient(headers=signed.bearer) as client:
                for runtime in service.cameras.values():  # the window starts now (in process: no route needed)
                    runtime.live.latencies.clear()
                await asyncio.sleep(seconds)
                latency = (await client.get(f"{base}/api/hub/latency")).json()
            received = json.loads((await clients.communicate())[0])
    finally:
        sim.terminate()
        await sim.wait()
    return {"viewers": viewers, "bytes_per_viewer_min": min(received),
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in latency.items()}}


async def judge_case(faults: str, seconds: float) -> dict[str, object]:
    """The screen judged, in one tab capture: ours for `seconds`, the baseline for half as long
    (the first few seconds of each not scored), then `<video>` for 20 s."""
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: the judge is test tooling
    from tests.live.judge import clips, judge, record

    plan = [("ours", seconds), ("baseline", max(15.0, seconds / 2)), ("native", 20.0)]
    work = Path(tempfile.mkdtemp(prefix="opticlink-judge-"))
    print("judge: making the clips, then " + ", ".join(f"{p} {s:g} s" for p, s in plan) + " in one tab capture",
          file=sys.stderr, flush=True)
    camera_clip, native_clip = clips(work, sum(s for _, s in plan) + 20)
    sim_args = ["--clip", str(camera_clip), "--bitrate", "1500000", *(["--faults", faults] if faults else [])]
    async with camera_and_service(*sim_args) as (base, signed), async_playwright() as pw:
        browser = await launch(pw, tab_capture=True)
        page = await browser.new_page(viewport={"width": 640, "height": 360})
        await page.context.add_cookies([signed.browser_cookie(base)])
        parts = await record(page, base, "cam", native_clip, plan, work / "judge.webm")
        await browser.close()
    judged = judge(work / "judge.webm", parts)
    native = judged["native"]
    out: dict[str, object] = {"faults": faults, "recording": str(work / "judge.webm"),
                              "sound_minus_picture_ms": {k: v.as_dict() if v else None for k, v in judged.items()}}
    for part in parts:
        mine = judged[part.player]
        if part.player != "native":
            out[part.player] = {"minus_native_ms": round(mine.mean_ms - native.mean_ms, 2) if mine and native else None,
                                "self_reported_av_p99_ms": part.stats.get("avOffsetP99Ms"),
                                "underruns": part.stats.get("underruns")}
    return out


async def wall_case(seconds: float, jank_at: str) -> list[dict[str, object]]:
    """The operator's page: the 4-camera demo wall and a 4x4 wall of 16 sub-streams, each played without jank
    and with jank starting at 5 s and 20 s (`bench/wall.py`): per tile underruns, A/V p99, latency p50/p95,
    frames decoded/shown/skipped, and the page's CPU."""
    import wall

    out = []
    for page in ("demo", "wall16"):
        options = argparse.Namespace(seconds=seconds, jank_at=jank_at, busy=0.0, page=page)
        async with contextlib.AsyncExitStack() as stack:
            base, cookies = await (wall._demo_page(stack) if page == "demo" else wall._sixteen_page(stack))
            out.append({"page": page, "cases": await wall._cases(options, base, cookies)})
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--viewers", type=int, default=16)
    parser.add_argument("--players", default="ours,baseline", help="which players (default both)")
    parser.add_argument("--cases", default="skewed-jittery,clean,hub,judge", help="which cases (default all)")
    parser.add_argument("--wall-jank", default="none,5,20", help="the wall case's jank starts (seconds, or none)")
    parser.add_argument("--viewers-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("url", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewers_child:
        await _viewers(args.url, args.token, args.viewers_child, args.seconds)
        return
    players, cases = tuple(args.players.split(",")), args.cases.split(",")
    report: dict[str, object] = {"benchmark": "live", "targets": {"underruns_ours": 0, "av_offset_p99_ms": 20,
                                                                  "latency_p95_ms": 100, "hub_p99_ms": 2},
                                 "cameras": []}
    for name, faults in (("skewed-jittery", "audio_skew_ppm=300,jitter_ms=40"), ("clean", "")):
        if name in cases:
            report["cameras"].append(await camera_case(name, faults, args.seconds, players))  # type: ignore[union-attr]
    if "hub" in cases:
        report["hub"] = await hub_case(args.viewers, min(args.seconds, 30.0))
    if "judge" in cases:
        report["judged"] = await judge_case("audio_skew_ppm=300,jitter_ms=40", args.seconds)
    if "wall" in cases:
        report["wall"] = await wall_case(args.seconds, args.wall_jank)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
