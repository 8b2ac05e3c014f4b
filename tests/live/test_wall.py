"""The demo page as an operator's wall, in headless Chromium against `opticlink demo`: layouts and focus,
every sound through a janking page, one camera heard at a time, tiles out of sight not decoding, talk
only where it can go."""

import asyncio
import contextlib
import json
import re
import time

import pytest

from tests.live.test_player import OPTICLINK, STATS, browser_page

PLAYER = "opticlink-player[camera='{}']"
pytestmark = pytest.mark.browser  # every test here drives Chromium through `wall_page`

SHOWN = """() => [...document.querySelectorAll('opticlink-player')]
  .filter(p => p.getBoundingClientRect().width > 0).map(p => p.getAttribute('camera'))"""


@contextlib.asynccontextmanager
async def demo():
    """`opticlink demo` as its own process; yields its one-time login link, from whichever of the first
    lines it prints carries it."""
    proc = await asyncio.create_subprocess_exec(OPTICLINK, "demo", "--port", "0", "--sim-port", "0",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        link = None
        for _ in range(10):
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            if link := re.search(r"https?://\S+/login\?token=\S+", line):
                break
        assert link, "the demo printed no login link"
        yield link.group(0)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


@contextlib.asynccontextmanager
async def wall_page(route=None):
    """The demo's page, logged in, with its four players playing; `route`: (pattern, handler) first."""
    async with demo() as link, browser_page() as (page, errors):
        if route:
            await page.route(*route)
        await page.goto(link)
        await page.wait_for_function("document.querySelectorAll('opticlink-player').length === 4")
        for cam in ("cam1", "cam2", "cam3", "cam4"):
            await page.wait_for_function(f"({STATS})('{cam}')?.framesShown > 5", timeout=30000)
        yield page, errors


async def stats(page, cam: str) -> dict:
    return await page.evaluate(STATS, cam)


async def until(page, cam: str, condition: str, timeout: float = 15000) -> dict:
    """Wait until `condition` (JS, of `s`: the camera's stats) holds; returns the stats then."""
    await page.wait_for_function(f"(s => s && ({condition}))(({STATS})('{cam}'))", timeout=timeout)
    return await stats(page, cam)


async def test_layouts_page_the_wall_and_a_double_click_focuses_a_camera_until_escape():
    async with wall_page() as (page, errors):
        assert await page.evaluate(SHOWN) == ["cam1", "cam2", "cam3", "cam4"]  # four cameras: 2x2
        stats_overlay = page.locator(PLAYER.format("cam1")).locator(".stats")
        assert not await stats_overlay.is_visible()  # the engineering stats are off by default

        await page.keyboard.press("1")
        assert await page.evaluate(SHOWN) == ["cam1"]
        await page.keyboard.press("PageDown")
        assert await page.evaluate(SHOWN) == ["cam2"]
        assert await page.locator(".ol-page").text_content() == "2 / 4"

        await page.locator(".ol-layouts button[data-layout='2']").click()
        assert await page.evaluate(SHOWN) == ["cam1", "cam2", "cam3", "cam4"]
        tile = await page.locator(PLAYER.format("cam3")).bounding_box()

        await page.locator(PLAYER.format("cam3")).dblclick(position={"x": tile["width"] / 2, "y": tile["height"] / 3})
        assert await page.evaluate(SHOWN) == ["cam3"]
        focused = await page.locator(PLAYER.format("cam3")).bounding_box()
        assert focused["width"] > 1.8 * tile["width"] and focused["height"] > 1.8 * tile["height"]
        await page.keyboard.press("Escape")
        assert await page.evaluate(SHOWN) == ["cam1", "cam2", "cam3", "cam4"]

        await page.keyboard.press("3")  # 3x3: all four, smaller
        assert await page.evaluate(SHOWN) == ["cam1", "cam2", "cam3", "cam4"]
        assert (await page.locator(PLAYER.format("cam1")).bounding_box())["width"] < 1280 / 3
        await page.keyboard.press("ArrowLeft")  # the selection (cam3, clicked) moves to cam2: Enter focuses it
        await page.keyboard.press("Enter")
        assert await page.evaluate(SHOWN) == ["cam2"]
        await page.keyboard.press("Escape")

        await page.keyboard.press("s")
        assert await stats_overlay.is_visible()
        await page.keyboard.press("s")
        assert not await stats_overlay.is_visible()
    assert errors == []


JANK = """() => setInterval(() => { const t = performance.now(); while (performance.now() - t < 100) {} }, 300)"""
JANK_S = 8.0


@pytest.mark.alone
async def test_every_sound_of_the_wall_plays_through_jank_then_one_camera_is_heard_and_the_others_play_on_muted():
    async with wall_page() as (page, errors):
        for cam in ("cam1", "cam2", "cam3"):  # nothing chosen yet: every camera plays its sound
            await until(page, cam, "s.clock === 'audio'", 30000)

        # The page's main thread blocked 100 ms of every 300 ms once playback has settled: the sound does
        # not go through it (network and decoding in a Worker, playing in the AudioWorklet). Before the
        # jank, one underrun each is allowed for the start, on a machine shared with other work.
        settled = {cam: await stats(page, cam) for cam in ("cam1", "cam2", "cam3")}
        jank = await page.evaluate(JANK)
        await asyncio.sleep(JANK_S)
        janked = {cam: await stats(page, cam) for cam in ("cam1", "cam2", "cam3")}
        await page.evaluate("jank => clearInterval(jank)", jank)
        for cam in ("cam1", "cam2", "cam3"):
            before, after = settled[cam], janked[cam]
            assert before["underruns"] <= 1, before
            assert after["audioFrames"] > before["audioFrames"] + 0.8 * JANK_S * 1000 / 64, (before, after)  # AAC 64 ms
            assert after["underruns"] == before["underruns"], {k: after[k] for k in (
                "underruns", "underrunTimes", "bufferMs", "targetBufferMs", "networkJitterMs", "deliveryJitterMs")}

        # one camera clicked: it is heard, the others play on muted
        player = page.locator(PLAYER.format("cam2"))
        box = await player.bounding_box()
        await player.click(position={"x": box["width"] / 2, "y": box["height"] / 3})
        muted = await until(page, "cam1", "s.audible === false && s.clock === 'wall'")
        await until(page, "cam3", "s.audible === false && s.clock === 'wall'")
        heard = await until(page, "cam2", "s.audible !== false && s.clock === 'audio'")
        assert await page.locator(".ol-tile[data-camera='cam2']").get_attribute("audible") == ""
        assert await page.locator(".ol-tile[data-camera='cam1']").get_attribute("audible") is None
        await asyncio.sleep(6)
        muted_later = await stats(page, "cam1")
        heard_later = await stats(page, "cam2")

        # the muted camera plays on: the same connection, pictures on the wall clock, sound counted only
        assert muted_later["connections"] == 1, muted_later
        assert muted_later["framesReceived"] > muted["framesReceived"] + 60, (muted, muted_later)
        assert muted_later["framesShown"] > muted["framesShown"] + 30, (muted, muted_later)
        assert muted_later["audioMuted"] > muted["audioMuted"] + 100, (muted, muted_later)  # 20 ms packets
        assert muted_later["underruns"] == muted["underruns"] and muted_later["bufferMs"] == 0
        # the heard one plays on, without a restart and without running dry (one allowed a shared machine)
        assert heard_later["connections"] == 1 and heard_later["audioFrames"] > heard["audioFrames"] + 200
        assert heard_later["underruns"] <= heard["underruns"] + 1, (heard, heard_later)

        # clicking cam1 brings its sound back on the same connection, and mutes cam2
        player = page.locator(PLAYER.format("cam1"))
        await player.click(position={"x": box["width"] / 2, "y": box["height"] / 3})
        back = await until(page, "cam1", "s.audible === true && s.clock === 'audio'")
        await until(page, "cam2", "s.audible === false && s.clock === 'wall'")
        assert back["connections"] == 1 and (await stats(page, "cam2"))["connections"] == 1
        # and an AAC camera's decoder, closed while muted, is set up again
        player = page.locator(PLAYER.format("cam3"))
        await player.click(position={"x": box["width"] / 2, "y": box["height"] / 3})
        aac = await until(page, "cam3", "s.audible === true && s.clock === 'audio'")
        assert aac["connections"] == 1 and aac["audioCodec"] == "mp4a.40.2"
    assert errors == []


async def test_a_tile_out_of_sight_stops_decoding_and_resumes_at_the_next_keyframe():
    async with wall_page() as (page, errors):
        await page.keyboard.press("1")  # cam1 alone: cam2's tile is not shown
        await until(page, "cam2", "s.visible === false")
        await asyncio.sleep(2)  # what was in the decoder comes out
        hidden = await stats(page, "cam2")
        await asyncio.sleep(3)
        later = await stats(page, "cam2")
        assert later["framesDecoded"] == hidden["framesDecoded"], (hidden, later)
        assert later["framesReceived"] > hidden["framesReceived"] + 30  # still received, not decoded

        await page.keyboard.press("PageDown")  # cam2 shown again: it decodes from the next keyframe
        started = time.monotonic()
        await until(page, "cam2", f"s.framesDecoded > {later['framesDecoded'] + 5}", 10000)
        resumed = time.monotonic() - started
        assert resumed < 1.0 + 4.0, resumed  # one-second GOPs, and slack for a loaded machine

        # a hidden tab: the page's visibilitychange listener stops every player's decoding
        await page.evaluate("""() => { Object.defineProperty(document, 'visibilityState',
            { configurable: true, get: () => 'hidden' }); document.dispatchEvent(new Event('visibilitychange')); }""")
        await until(page, "cam2", "s.visible === false")
        await asyncio.sleep(1.5)
        tab_hidden = await stats(page, "cam2")
        await asyncio.sleep(2)
        assert (await stats(page, "cam2"))["framesDecoded"] == tab_hidden["framesDecoded"]
        await page.evaluate("""() => { delete document.visibilityState;
            document.dispatchEvent(new Event('visibilitychange')); }""")
        await until(page, "cam2", f"s.framesDecoded > {tab_hidden['framesDecoded'] + 5}", 10000)
    assert errors == []


async def test_talk_is_offered_only_where_the_camera_can_be_talked_to_and_t_talks_to_the_camera_heard():
    async with wall_page() as (page, errors):
        # the demo's cam4 has no speaker: the server asks each camera for its backchannel at start
        button = page.locator(PLAYER.format("cam4")).locator(".talk-button")
        await button.wait_for(state="hidden", timeout=15000)
        assert await page.locator(PLAYER.format("cam1")).locator(".talk-button").is_visible()

        player = page.locator(PLAYER.format("cam1"))
        box = await player.bounding_box()
        await player.click(position={"x": box["width"] / 2, "y": box["height"] / 3})  # cam1 heard
        talker = "document.querySelector(\"opticlink-player[camera='cam1']\").shadowRoot.querySelector('.talker')"
        await page.keyboard.down("t")  # held: push to talk on the camera heard
        await page.wait_for_function(f"{talker}.textContent === 'you are talking'", timeout=10000)
        await asyncio.sleep(0.6)
        await page.keyboard.up("t")
        await page.wait_for_function(f"{talker}.textContent === ''", timeout=10000)
    assert errors == []


async def test_a_camera_with_a_sub_stream_shows_it_in_a_tile_and_switches_seamlessly_to_the_main_one_focused():
    async def cam1_has_a_sub_stream(route):  # as the server lists a camera with a sub-stream
        response = await route.fetch()
        cameras = await response.json()
        for camera in cameras:
            camera["substream"] = camera["id"] == "cam1"
        await route.fulfill(response=response, body=json.dumps(cameras))

    sockets: list = []
    async with demo() as link, browser_page() as (page, errors):
        await page.route("**/api/cameras", cam1_has_a_sub_stream)
        page.on("websocket", lambda socket: sockets.append(socket))
        await page.goto(link)
        await until(page, "cam1", "s.framesShown > 5", 30000)
        live = {s.url.split("/api/cameras/")[1]: s for s in sockets}
        assert "cam1/live?stream=sub" in live and "cam2/live" in live, list(live)
        player = page.locator(PLAYER.format("cam1"))
        assert await player.get_attribute("stream") == "sub"

        box = await player.bounding_box()
        await player.dblclick(position={"x": box["width"] / 2, "y": box["height"] / 3})
        assert await player.get_attribute("stream") == "main"
        canvases = []  # the old picture stays until the new stream's first frame is shown
        for _ in range(300):
            canvases.append(await player.evaluate("p => p.shadowRoot.querySelectorAll('canvas').length"))
            if canvases[-1] == 1 and 2 in canvases:
                break
            await asyncio.sleep(0.05)
        assert 2 in canvases and canvases[-1] == 1, canvases
        assert any(s.url.endswith("/api/cameras/cam1/live") for s in sockets)
        assert live["cam1/live?stream=sub"].is_closed()
        after = await until(page, "cam1", "s.framesShown > 5 && s.connections === 1")
        assert after["clock"] == "audio"  # focused: heard
    assert errors == []


async def test_a_tile_too_small_to_show_motion_decodes_keyframes_only_and_reports_what_it_skipped():
    async with wall_page() as (page, errors):
        resize = "w => { const p = document.querySelector(\"" + PLAYER.format("cam2") + "\"); p.style.width = w; }"
        await page.evaluate(resize, "100px")
        await until(page, "cam2", "s.keyframesOnly === true")
        await asyncio.sleep(1)
        small = await stats(page, "cam2")
        await asyncio.sleep(4)
        later = await stats(page, "cam2")
        received = later["framesReceived"] - small["framesReceived"]
        decoded = later["framesDecoded"] - small["framesDecoded"]
        assert received > 40 and decoded <= 6, (received, decoded)  # one-second GOPs: about 4 keyframes
        assert later["framesSkipped"] - small["framesSkipped"] >= received - decoded - 2, (small, later)

        await page.evaluate(resize, "")
        await until(page, "cam2", "s.keyframesOnly === false")
        await until(page, "cam2", f"s.framesDecoded > {later['framesDecoded'] + 20}", 10000)  # motion again
        stats_now = await stats(page, "cam1")
        assert "networkJitterMs" in stats_now and "deliveryJitterMs" in stats_now
    assert errors == []
