"""A camera's diagnostics page in headless Chromium against `opticlink demo`: the verdict in words
and uPlot plots of its history (cam2's audio clock is 300 ppm fast, its network 40 ms jittery), the
live viewers' latency among them while the wall plays in another tab."""

import asyncio
import re
import time

from tests.live.test_player import SCREENSHOTS, address, browser_page, process

PLOTTED = """() => {
  const plots = window.diagnostics?.plots;
  if (!plots || plots.size < 6) return false;
  return [...plots.values()].every(({ u }) => u.data[0].length > 3 && u.ctx.canvas.width > 0);
}"""


async def test_the_diagnostics_page_plots_a_cameras_history_and_says_what_is_wrong():
    async with process("demo", "--port", "0", "--sim-port", "0") as (_, printed), browser_page() as (page, errors):
        base = address(printed[0])
        await page.goto(base)  # the one-time link signs the page in, and opens the wall
        link = page.locator(".ol-tile[data-camera='cam2'] a.ol-diagnostics")  # each tile links its diagnostics
        await link.wait_for(state="attached")
        wall = page  # keeps playing: its players report their latency to the service
        context = await wall.context.browser.new_context(viewport={"width": 1280, "height": 760})
        await context.add_cookies(await wall.context.cookies())  # the same signed-in user
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(base.split("/login")[0].rstrip("/") + await link.get_attribute("href"))
        await page.wait_for_function(PLOTTED, timeout=30000)
        verdict, viewers = "", False
        deadline = time.monotonic() + 40  # skew is known once Sender Reports have come for a while
        while ("ppm" not in verdict or not viewers) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            verdict = await page.locator("#verdict").text_content() or ""
            viewers = await page.evaluate("window.diagnostics.plots.get('viewer').u.data[1].some((x) => x > 0)")
        plotted = await page.evaluate("""() => Object.fromEntries([...window.diagnostics.plots].map(
            ([id, { u }]) => [id, { points: u.data[0].length, series: u.series.length,
                                    known: u.data.slice(1).some((v) => v.some((x) => x !== null)) }]))""")
        labels = await page.evaluate("[...document.querySelectorAll('#plots [role=img]')].map((e) => e.ariaLabel)")
        empty_hidden = await page.locator("#empty").is_hidden()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "diagnostics.png"), full_page=True)
        await page.get_by_label("1 h").check()  # another span: new plots of the same samples
        await page.wait_for_function(PLOTTED, timeout=10000)
        span = await page.evaluate("window.diagnostics.plots.get('skew').u.scales.x")
    assert errors == []
    assert "ppm" in verdict, verdict
    assert empty_hidden
    assert 55 < span["max"] - span["min"] < 3600, span
    assert set(plotted) == {"skew", "jitter", "loss", "source", "av", "viewer"}, plotted
    assert viewers and plotted["viewer"]["known"], plotted  # the wall's player of cam2 told its latency
    latency = re.search(r"slowest viewer latency p95 ms: ([\d.]+)", labels[5])
    assert latency and 0 < float(latency.group(1)) < 5000, labels
    assert plotted["skew"]["series"] == 3 and plotted["skew"]["known"], plotted  # x, audio, video
    assert plotted["jitter"]["known"] and plotted["source"]["known"], plotted
    skew = re.search(r"audio ppm: (-?[\d.]+)", labels[0])
    assert skew and 250 < float(skew.group(1)) < 350, labels  # the simulator's 300 ppm, read by the screen reader
