"""The live player in headless Chromium (Playwright driving /usr/bin/chromium) against the service."""

import asyncio
import contextlib
import io
import os
import re
import socket
import sys
from itertools import pairwise
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import websockets
from playwright.async_api import async_playwright

from opticlink.api.app import BENCH_ENV
from opticlink.live.chromium import launch
from tests.auth.helpers import credentials, sign_in
from tests.live.judge import clips, judge, record
from tests.peers.conftest import gstreamer_server

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"
STATS = "cam => document.querySelector(`opticlink-player[camera='${cam}']`)?.stats ?? null"
OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")
BENCH_PAGES = Path(__file__).resolve().parents[1] / "web"  # live.html, judge.html: at /static/bench with bench=True


@contextlib.asynccontextmanager
async def process(*args: str, lines: int = 1, bench: bool = False):
    """Run an `opticlink` verb as its own process (as a user would); yields the first `lines` lines
    it prints, which carry its addresses. `bench`: the service also serves the test pages (`BENCH_PAGES`)
    at /static/bench, and the test-only routes (`opticlink.api.app.BENCH_ENV`)."""
    env = {**os.environ, BENCH_ENV: str(BENCH_PAGES)} if bench else None
    proc = await asyncio.create_subprocess_exec(OPTICLINK, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        printed = [(await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip() for _ in range(lines)]
        yield proc, printed
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def address(line: str) -> str:
    return re.search(r"(https?|rtsp)://\S+", line).group(0)


@contextlib.asynccontextmanager
async def camera_and_service(tmp_path, *sim_args: str, yaml: str = ""):
    """`opticlink sim` with one camera and `opticlink serve` for it (with the test pages at /static/bench),
    each in its own process; yields the simulator, its URL, the service's address and credentials (an
    admin's session and token). `yaml`: more top-level configuration lines (`segment_seconds: 5`)."""
    async with process("sim", "--port", "0", "--size", "320x180", *sim_args) as (sim, printed):
        url = address(printed[0])
        config = tmp_path / "cameras.yaml"
        config.write_text(f"data_dir: {tmp_path}\n{yaml}\ncameras:\n  - id: cam1\n    name: Door\n    url: {url}\n")
        creds = credentials(tmp_path)  # in the database the service opens
        async with process("serve", str(config), "--port", "0", bench=True) as (_, served):
            yield sim, url, address(served[0]), creds


@contextlib.asynccontextmanager
async def browser_page(*extra_args: str):
    async with async_playwright() as pw:
        browser = await launch(pw, extra_args=list(extra_args))
        page = await browser.new_page(viewport={"width": 1280, "height": 760})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page, errors
        await browser.close()


def pixels(png: bytes) -> np.ndarray:
    with av.open(io.BytesIO(png)) as container:
        return next(container.decode(video=0)).to_ndarray(format="gray").astype(int)


async def stats_of(page, camera: str) -> dict:
    return await page.evaluate(STATS, camera)


async def test_demo_page_plays_every_camera_with_the_right_clock():
    names = ("cam1", "cam2", "cam3", "cam4")
    async with process("demo", "--port", "0", "--sim-port", "0") as (_, printed), browser_page() as (page, errors):
        await page.goto(address(printed[0]))
        await page.wait_for_function("document.querySelectorAll('opticlink-player').length === 4")
        await asyncio.sleep(8)
        players = {name: page.locator(f"opticlink-player[camera='{name}']") for name in names}
        first = {name: pixels(await p.screenshot()) for name, p in players.items()}
        changed: dict[str, float] = {}
        for _ in range(5):  # a loaded machine may hold a picture for a moment: look again
            await asyncio.sleep(1.0)
            for name, p in players.items():
                if changed.get(name, 0.0) <= 0.02:
                    changed[name] = float(np.mean(np.abs(first[name] - pixels(await p.screenshot())) > 8))
            if min(changed.values()) > 0.02:
                break
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "demo.png"))
        stats = {name: await stats_of(page, name) for name in players}
    assert errors == []
    for name in names:
        assert changed[name] > 0.02, f"{name}: the picture did not move ({changed[name]:.3f} of pixels changed)"
        assert first[name].std() > 10, f"{name}: the picture is blank"
        assert stats[name]["framesShown"] > 60, (name, stats[name])  # four software-composited canvases
    assert [stats[n]["clock"] for n in ("cam1", "cam2", "cam3")] == ["audio"] * 3
    assert stats["cam4"]["clock"] == "wall" and stats["cam4"]["audioCodec"] is None
    assert stats["cam3"]["audioCodec"] == "mp4a.40.2" and stats["cam3"]["audioFrames"] > 50


async def test_the_page_says_who_is_logged_in_and_logging_out_leaves_it(tmp_path):
    async with camera_and_service(tmp_path) as (_, _, base, creds), browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(base)
        await page.wait_for_function("document.getElementById('user').textContent.length > 0")
        assert await page.locator("#user").text_content() == f"{creds.name} (admin)"
        assert await page.locator("#audit").is_visible()
        await page.wait_for_function("document.querySelector('opticlink-player')?.stats?.framesShown > 10")
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url("**/login**")
        await page.goto(base)  # the session is over: back to the login page, not a page of dead players
        await page.wait_for_url("**/login**")
    assert errors == []


@pytest.mark.alone
async def test_audio_flows_without_underruns_on_an_idle_page(tmp_path):
    # Recording off: with the recorder in the same process, the player's buffer stood 60-120 ms over
    # its target at 12 s in about 1 run of 3 on this 2-core machine (an open problem, see the notes);
    # this test is the player's steady state.
    async with camera_and_service(tmp_path, yaml="record: false") as (_, _, base, creds), \
            browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(f"{base}/static/bench/live.html?camera=cam1")
        await asyncio.sleep(10)
        over: list[float] = []  # the buffer over its target, read through 2 s: the level, not one instant's burst
        for _ in range(10):
            await asyncio.sleep(0.2)
            stats = await page.evaluate("document.getElementById('player').stats")
            over.append(stats["bufferMs"] - stats["targetBufferMs"])
    assert errors == []
    assert stats["audioTransport"] == "shared ring"
    # one underrun is allowed to a machine shared with other work; a player that stutters has many
    assert stats["audioFrames"] > 400 and stats["underruns"] <= 1, {
        k: stats[k] for k in ("underruns", "underrunTimes", "bufferMs", "targetBufferMs", "jitterMs")}
    assert stats["targetBufferMs"] >= 40
    assert sorted(over)[len(over) // 2] <= 60, over  # held near its target by rate trims
    assert abs(stats["trimPercent"]) <= 0.5


@pytest.mark.alone
async def test_a_page_that_is_not_cross_origin_isolated_plays_its_sound_through_a_message_port(tmp_path):
    async with camera_and_service(tmp_path) as (_, _, base, creds), browser_page() as (page, errors):
        await sign_in(page, base, creds)

        async def without_isolation(route):  # as a page embedding the player elsewhere would be served
            response = await route.fetch()
            headers = {k: v for k, v in response.headers.items() if not k.lower().startswith("cross-origin")}
            await route.fulfill(response=response, headers=headers)

        await page.route("**/static/bench/live.html*", without_isolation)
        await page.goto(f"{base}/static/bench/live.html?camera=cam1")
        await asyncio.sleep(12)
        isolated = await page.evaluate("crossOriginIsolated")
        stats = await page.evaluate("document.getElementById('player').stats")
    assert errors == []
    assert not isolated and stats["audioTransport"] == "message port"
    assert stats["clock"] == "audio" and stats["framesShown"] > 150, stats
    assert stats["audioFrames"] > 400 and stats["underruns"] <= 1, stats  # one, as above, for a shared machine


@pytest.mark.alone  # frames back within 20 s of the camera's return: beside another browser, 37 of 50 came
async def test_a_camera_that_dies_and_returns_comes_back_by_itself(tmp_path):
    async with camera_and_service(tmp_path) as (sim, url, base, creds), browser_page() as (page, _):
        await sign_in(page, base, creds)
        await page.goto(f"{base}/static/bench/live.html?camera=cam1")
        await asyncio.sleep(5)
        before = (await page.evaluate("document.getElementById('player').stats"))["framesShown"]
        sim.kill()  # the camera vanishes
        await sim.wait()
        await asyncio.sleep(3)
        during = (await page.evaluate("document.getElementById('player').stats"))["framesShown"]
        port = url.rsplit(":", 1)[1].split("/")[0]
        async with process("sim", "--port", port, "--size", "320x180"):  # and returns at the same address
            for _ in range(40):
                await asyncio.sleep(0.5)
                after = (await page.evaluate("document.getElementById('player').stats"))["framesShown"]
                if after > during + 50:
                    break
            async with httpx.AsyncClient(headers=creds.bearer) as client:
                status = (await client.get(f"{base}/api/cameras/cam1")).json()
    assert before > 50
    assert after > during + 50, (before, during, after)
    assert status["connects"] >= 2 and status["state"] == "playing"


@pytest.mark.alone
async def test_a_slow_viewer_does_not_stall_a_fast_one(tmp_path):
    async with camera_and_service(tmp_path, "--bitrate", "3000000") as (_, _, base, creds), \
            browser_page() as (page, _):
        await sign_in(page, base, creds)
        # a viewer that never reads: the library stops reading once it holds one message, and a small
        # receive buffer (set before connecting) lets the stall reach the server at once
        host, port = base.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        slow = await websockets.connect(f"ws://{host}:{port}/api/cameras/cam1/live", sock=sock, max_queue=1,
                                        max_size=None, additional_headers=creds.bearer,
                                        close_timeout=1)  # its closing handshake waits behind the stall
        await page.goto(f"{base}/static/bench/live.html?camera=cam1")
        await asyncio.sleep(3)
        shown_then = (await page.evaluate("document.getElementById('player').stats"))["framesShown"]
        await asyncio.sleep(6)
        fast = await page.evaluate("document.getElementById('player').stats")
        async with httpx.AsyncClient(headers=creds.bearer) as client:
            viewers = (await client.get(f"{base}/api/cameras/cam1")).json()["viewers"]
        await slow.close()
    assert fast["framesShown"] - shown_then > 110, fast  # 6 s at 25 fps, minus nothing much
    assert fast["underruns"] <= 1, fast  # a stalled fast viewer would run dry again and again
    stalled = max(viewers, key=lambda v: v["dropped_video"])
    assert stalled["dropped_video"] > 50, viewers  # the slow one lost video, nobody waited for it


def frame_number(png: bytes) -> int:
    """The simulator's frame counter: 12 white (235) blocks along the bottom twelfth of the picture,
    bit 0 first, over a grey gradient that stays below 170."""
    gray = pixels(png)
    height, width = gray.shape
    row = gray[height - height // 24]
    return sum(1 << bit for bit in range(12) if row[int((bit + 0.5) * width / 12)] > 215)


async def test_b_frames_are_shown_in_presentation_order(tmp_path):
    # x264 High profile with two B-frames: frames arrive in decode order, WebCodecs shows them in order
    async with camera_and_service(tmp_path, "--bframes", "2") as (_, _, base, creds), \
            browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(f"{base}/static/bench/live.html?camera=cam1")
        await page.wait_for_function("document.getElementById('player')?.stats?.framesShown > 25", timeout=30000)
        await page.evaluate("""() => { for (const e of document.getElementById('player').shadowRoot.children)
            if (e.tagName !== 'CANVAS' && e.tagName !== 'STYLE') e.style.visibility = 'hidden'; }""")
        canvas = page.locator("#player canvas")
        numbers = []
        for _ in range(40):
            number = frame_number(await canvas.screenshot())
            if number != 4095:  # the white flash on the first frame of every second
                numbers.append(number)
            await asyncio.sleep(0.05)
        stats = await page.evaluate("document.getElementById('player').stats")
    assert not errors and stats["videoCodec"].startswith("avc1.64"), (errors, stats)  # High profile
    assert all(n < 100 for n in numbers), numbers  # the clip's 100 frames: every screenshot read
    # the clip loops every 100 frames (4 s); apart from the loop, the counter never goes back
    backwards = [(a, b) for a, b in pairwise(numbers) if b < a and not (a >= 70 and b <= 30)]
    assert not backwards, numbers
    assert sum(1 for a, b in pairwise(numbers) if b != a) >= 15, numbers  # and it moves


@pytest.mark.slow
@pytest.mark.judge
async def test_the_screen_keeps_picture_and_sound_together_as_chromiums_own_player_does(tmp_path):
    # av-drift-detector judges a tab capture: our player on a skewed, jittery camera, then <video>.
    # The capture is the instrument, and on a loaded machine it wanders of its own accord (its
    # frames are taken late while the compositor waits: one 5 s block 20 ms off, then back). A
    # player that is off fails every recording; up to three recordings are made before judging.
    camera_clip, native_clip = clips(tmp_path, 60)
    faults = "audio_skew_ppm=300,jitter_ms=40"
    attempts = []
    async with (camera_and_service(tmp_path, "--clip", str(camera_clip), "--faults", faults) as (_, _, base, creds),
                async_playwright() as pw):
        for attempt in range(3):
            browser = await launch(pw, tab_capture=True)
            page = await browser.new_page(viewport={"width": 640, "height": 360})
            await sign_in(page, base, creds)
            capture = tmp_path / f"judge{attempt}.webm"
            parts = await record(page, base, "cam1", native_clip, [("ours", 22), ("native", 12)], capture)
            await browser.close()
            judged = judge(capture, parts)
            ours, native = judged["ours"], judged["native"]
            attempts.append((ours, native, parts[0].stats))
            if ours is None or native is None:
                continue
            # the capture delays the sound by tens of ms for both; a player off by a frame or more stands out
            # and it holds: no drift, and no more wander than the capture shows Chromium's own player with
            steady = abs(ours.drift_ms) <= 10 and ours.spread_ms <= max(12.0, native.spread_ms + 6.0)
            if ours.frames > 250 and parts[0].stats["underruns"] == 0 and abs(ours.mean_ms - native.mean_ms) <= 25 \
                    and steady:
                return
    pytest.fail(f"no recording judged the player in sync and steady: {attempts}")


@pytest.mark.peer
async def test_hevc_camera_gets_a_clear_message_where_the_browser_cannot_decode_it(tmp_path):
    with gstreamer_server(tmp_path, video="h265", audio="pcmu") as (url, _):
        config = tmp_path / "cameras.yaml"
        config.write_text(f"data_dir: {tmp_path}\ncameras:\n  - id: hevc\n    url: {url}\n")
        creds = credentials(tmp_path)
        async with process("serve", str(config), "--port", "0", bench=True) as (_, served), \
                browser_page() as (page, _):
            await sign_in(page, address(served[0]), creds)
            await page.goto(f"{address(served[0])}/static/bench/live.html?camera=hevc")
            await asyncio.sleep(6)
            stats = await page.evaluate("document.getElementById('player').stats")
    assert stats["videoCodec"].startswith("hvc1")
    assert stats["message"] == "This browser cannot decode H.265 (HEVC) video; audio still plays."
    # the sound plays (128 ms packets); whether smoothly is what the `alone` tests measure
    assert stats["audioFrames"] > 30, stats
