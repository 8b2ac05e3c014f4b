"""The live wall under load: every player of a wall page in headless Chromium: the `opticlink demo`
page (4 cameras), or with `--page wall16` a 4x4 wall of 16 simulated cameras' sub-streams.

For each case the page is opened afresh and played for `--seconds`; from `--jank-at` seconds on (a
case per value; `none` is the same page left alone) its main thread is blocked 100 ms of every
300 ms, and with `--busy` a second process keeps one core that busy (0.6: 60 %). Reported per tile
(player): audio underruns and when, the lateness estimate (`jitterMs`), the audio buffer's target,
capture-to-presentation latency p50/p95 and |A/V offset at presentation| p99 over the run after
its first `STEADY_S`, video frames received/decoded/shown/dropped/skipped (left undecoded); and the
browser's CPU (all its processes, CPU-seconds per second). Prints JSON.

    .venv/bin/python bench/wall.py [--page demo|wall16] [--seconds 60] [--jank-at none,0,5,20] [--busy 0.6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEADY_S = 3.0
READ = """() => [...document.querySelectorAll('opticlink-player')].map(p => {
  const s = p.stats || {};
  const samples = p.takeSamples ? p.takeSamples() : {avOffsets: [], latencies: []};
  return {camera: p.getAttribute('camera'), underruns: s.underruns ?? 0, underrunTimes: s.underrunTimes ?? [],
          jitterMs: s.jitterMs ?? null, targetBufferMs: s.targetBufferMs ?? null, bufferMs: s.bufferMs ?? null,
          audio: s.audioCodec ?? null, received: s.framesReceived ?? 0, decoded: s.framesDecoded ?? 0,
          shown: s.framesShown ?? 0, dropped: s.framesDropped ?? 0, skipped: s.framesSkipped ?? 0, skips: s.skips ?? 0,
          networkJitterMs: s.networkJitterMs ?? null, deliveryJitterMs: s.deliveryJitterMs ?? null,
          avOffsets: samples.avOffsets, latencies: samples.latencies};
})"""
JANK = """() => { window.janked = 0; setInterval(() => { const t = performance.now();
  while (performance.now() - t < 100) {} window.janked++; }, 300); }"""


def _busy(share: float, stop: float) -> None:
    """Keep one core `share` busy until `stop` (time.time())."""
    while time.time() < stop:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.1 * share:
            pass
        time.sleep(0.1 * (1 - share))


def _browser_cpu() -> float:
    """CPU-seconds used so far by every Chromium process."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        if "chrom" in name:
            fields = text[text.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def summary(values: list[float], absolute: bool = False) -> dict[str, float] | None:
    if not values:
        return None
    a = np.abs(values) if absolute else np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "p99": round(float(np.percentile(a, 99)), 1), "count": len(a)}


async def play(browser, link: str, seconds: float, jank_at: float | None) -> dict[str, object]:  # type: ignore[no-untyped-def]
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(link)
    await page.wait_for_function("document.querySelectorAll('opticlink-player').length >= 1")
    started = time.monotonic()
    cpu_start: float | None = None
    cpu_at = 0.0
    jank_started = False
    tiles: dict[str, dict] = {}
    last: dict[str, dict] = {}
    while (elapsed := time.monotonic() - started) < seconds:
        if jank_at is not None and not jank_started and elapsed >= jank_at:
            await page.evaluate(JANK)
            jank_started = True
        if cpu_start is None and elapsed >= STEADY_S:
            cpu_start, cpu_at = _browser_cpu(), time.monotonic()
        await asyncio.sleep(0.5 if jank_at is not None and not jank_started else 1.0)
        for stats in await page.evaluate(READ):
            tile = tiles.setdefault(stats["camera"], {"avOffsets": [], "latencies": []})
            if time.monotonic() - started >= STEADY_S:
                tile["avOffsets"] += stats["avOffsets"]
                tile["latencies"] += stats["latencies"]
            last[stats["camera"]] = stats
    cpu = (_browser_cpu() - cpu_start) / (time.monotonic() - cpu_at) if cpu_start is not None else None
    janked = await page.evaluate("window.janked ?? 0")
    await context.close()
    out: dict[str, object] = {"jank_at_s": jank_at, "main_thread_blocks": janked,
                              "browser_cpu_per_s": None if cpu is None else round(cpu, 3), "tiles": {}}
    for camera, stats in sorted(last.items()):
        out["tiles"][camera] = {  # type: ignore[index]
            "audio": stats["audio"], "underruns": stats["underruns"], "underrun_times_s": stats["underrunTimes"],
            "skips": stats["skips"], "jitter_ms": stats["jitterMs"], "network_jitter_ms": stats["networkJitterMs"],
            "delivery_jitter_ms": stats["deliveryJitterMs"], "target_buffer_ms": stats["targetBufferMs"],
            "latency_ms": summary(tiles[camera]["latencies"]),
            "av_offset_abs_ms": summary(tiles[camera]["avOffsets"], absolute=True),
            "frames": {k: stats[k] for k in ("received", "decoded", "shown", "dropped", "skipped")}}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--jank-at", default="none,0,5,20", help="cases: seconds after load, or none")
    parser.add_argument("--busy", type=float, default=0.0, help="a second process keeps a core this busy")
    parser.add_argument("--page", choices=("demo", "wall16"), default="demo",
                        help="the demo page (4 cameras), or a 4x4 wall of 16 cameras' sub-streams")
    args = parser.parse_args()


    async with contextlib.AsyncExitStack() as stack:
        base, cookies = await (_demo_page(stack) if args.page == "demo" else _sixteen_page(stack))
        results = await _cases(args, base, cookies)
    print(json.dumps({"page": args.page, "busy": args.busy, "seconds": args.seconds, "cases": results}, indent=2))


BENCH = os.path.dirname(os.path.abspath(__file__))
OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")


async def _process(stack: contextlib.AsyncExitStack, *args: str, env: dict[str, str] | None = None,
                   lines: int = 1) -> list[str]:
    """An `opticlink` verb as its own process, stopped with the stack; the first lines it prints."""
    proc = await asyncio.create_subprocess_exec(OPTICLINK, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL, env=env)

    async def stop() -> None:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()

    stack.push_async_callback(stop)
    assert proc.stdout is not None
    return [(await asyncio.wait_for(proc.stdout.readline(), 180)).decode() for _ in range(lines)]


async def _demo_page(stack: contextlib.AsyncExitStack) -> tuple[str, list[dict[str, object]]]:
    """`opticlink demo` (4 cameras, sub-streams in the tiles): its page and the one-time link's sign-in."""
    data = tempfile.mkdtemp(prefix="opticlink-wall-")
    line = (await _process(stack, "demo", "--port", "0", "--sim-port", "0", "--data-dir", data))[0]
    link = re.search(r"https?://\S+", line).group(0)  # type: ignore[union-attr]
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    async with async_playwright() as pw:
        browser = await launch(pw)
        first = await (await browser.new_context()).new_page()
        await first.goto(link)  # the one-time link signs this browser in
        cookies = await first.context.cookies()
        await browser.close()
    return link.split("/login")[0], cookies


async def _sixteen_page(stack: contextlib.AsyncExitStack) -> tuple[str, list[dict[str, object]]]:
    """16 simulated cameras with sub-streams (G.711) and `opticlink serve` for them: a 4x4 wall of sub-streams."""
    from access import admin, bench_env

    printed = await _process(stack, "sim", "--cameras", "16", "--port", "0", "--substream", lines=16)
    urls = [re.search(r"rtsp://\S+", line).group(0) for line in printed]  # type: ignore[union-attr]
    data = Path(tempfile.mkdtemp(prefix="opticlink-wall16-"))
    config = data / "cameras.yaml"
    config.write_text(f"data_dir: {data}\nrecord: false\ncameras:\n" + "".join(
        f"  - id: cam{i + 1}\n    url: {url}\n    substream_url: {url}/sub\n" for i, url in enumerate(urls)))
    served = (await _process(stack, "serve", str(config), "--port", "0", env=bench_env(data)))[0]
    base = re.search(r"https?://\S+", served).group(0).rstrip("/")  # type: ignore[union-attr]
    return base, [admin(data).browser_cookie(base)]


async def _cases(args: argparse.Namespace, base: str, cookies: list[dict[str, object]]) -> list[dict[str, object]]:
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    busy = None
    results: list[dict[str, object]] = []
    try:
        async with async_playwright() as pw:
            browser = await launch(pw)
            if args.busy:
                # its own interpreter, not a fork of this one (whose Playwright threads a fork would copy half of:
                # the run then hung at exit)
                busy = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {BENCH!r}); "
                                         f"import wall; wall._busy({args.busy}, {time.time() + 24 * 3600})"])
            for case in args.jank_at.split(","):
                jank_at = None if case == "none" else float(case)
                print(f"wall ({args.page}): jank {'none' if jank_at is None else f'from {jank_at:g} s'}, "
                      f"{args.seconds:g} s", file=sys.stderr, flush=True)
                result = await play(_Signed(browser, cookies), f"{base}/", args.seconds, jank_at)
                results.append(result)
                for camera, tile in result["tiles"].items():  # type: ignore[union-attr]
                    print(f"  {camera}: underruns {tile['underruns']} at {tile['underrun_times_s']}, "
                          f"jitter {tile['jitter_ms']} ms, target {tile['target_buffer_ms']} ms, "
                          f"latency {tile['latency_ms']}", file=sys.stderr, flush=True)
            await browser.close()
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return results


class _Signed:
    """The browser, its new contexts signed in (Playwright contexts do not share cookies)."""

    def __init__(self, browser, cookies) -> None:  # type: ignore[no-untyped-def]
        self.browser, self.cookies = browser, cookies

    async def new_context(self):  # type: ignore[no-untyped-def]
        context = await self.browser.new_context()
        await context.add_cookies(self.cookies)
        return context


if __name__ == "__main__":
    asyncio.run(main())
