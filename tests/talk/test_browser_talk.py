"""Talk from the demo page in headless Chromium: its fake microphone plays a file, the talk button
sends it, and the simulated doorbell's speaker receives it."""

import asyncio
import wave

import httpx
import numpy as np
import pytest

from opticlink.dsp.g711 import decode_g711
from tests.auth.helpers import credentials, sign_in
from tests.live.test_player import address, browser_page, process

RATE = 48000
TONE = 1000.0


def _bursts(path, seconds: float = 10.0) -> None:
    """Tone bursts (300 ms on, 200 ms off) at -12 dBFS: a sound noise suppression leaves alone."""
    t = np.arange(int(seconds * RATE)) / RATE
    on = ((t % 0.5) < 0.3).astype(float)
    ramp = np.convolve(on, np.hanning(480) / np.sum(np.hanning(480)), mode="same")
    pcm = (0.25 * np.sin(2 * np.pi * TONE * t) * ramp * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def _tone_share(pcm: np.ndarray, rate: int) -> float:
    """The share of the signal's power within 50 Hz of the tone."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    return float(spectrum[np.abs(freqs - TONE) <= 50].sum() / spectrum.sum())


@pytest.mark.alone
async def test_pressing_talk_on_the_demo_page_plays_the_microphone_on_the_doorbell(tmp_path):
    microphone = tmp_path / "microphone.wav"
    _bursts(microphone)
    speakers = tmp_path / "speakers"
    async with process("demo", "--port", "0", "--sim-port", "0", "--backchannel-dir", str(speakers)) as (_, printed), \
            browser_page(f"--use-file-for-fake-audio-capture={microphone}") as (page, errors):
        link = address(printed[0])  # the demo's one-time login link: it logs in (as admin) and opens the page
        base = link.split("/login")[0]
        await page.goto(link)
        player = page.locator("opticlink-player[camera='cam1']")
        button = player.locator("button.talk-button")
        await page.wait_for_function(
            "document.querySelector(\"opticlink-player[camera='cam1']\")?.stats?.audioFrames > 10", timeout=30000)
        await button.click()  # a short press latches talk on
        await page.wait_for_function(
            "document.querySelector(\"opticlink-player[camera='cam1']\").shadowRoot"
            ".querySelector('.talker').textContent === 'you are talking'", timeout=10000)
        meter = 0.0  # the microphone plays bursts: read the meter through a few of them
        for _ in range(16):
            await asyncio.sleep(0.25)
            width = await player.locator(".meter i").evaluate("e => e.style.width")
            meter = max(meter, float(width.rstrip("%") or 0))
        stats = await page.evaluate("document.querySelector(\"opticlink-player[camera='cam1']\").stats")
        cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
        async with httpx.AsyncClient(cookies=cookies) as client:
            status = (await client.get(base + "/api/cameras/cam1")).json()
        await button.click()  # and a click lets go
        await page.wait_for_function(
            "document.querySelector(\"opticlink-player[camera='cam1']\").shadowRoot"
            ".querySelector('.talker').textContent === ''", timeout=10000)
        await asyncio.sleep(0.5)
    assert errors == []
    heard = decode_g711((speakers / "cam1.bin").read_bytes(), "pcmu").astype(float) / 32768
    latency = status["talk"]["latency"]
    print(f"browser talk: {stats['talkFramesSent']} frames, browser capture p50/p95 {stats['talkCaptureP50Ms']}/"
          f"{stats['talkCaptureP95Ms']} ms; server parts {latency}")
    assert len(heard) >= 3 * 8000, f"the doorbell's speaker received only {len(heard) / 8000:.2f} s"
    assert _tone_share(heard, 8000) > 0.9, "the speaker did not receive the microphone's tone"
    envelope = np.sqrt(np.mean(heard[: len(heard) // 80 * 80].reshape(-1, 80) ** 2, axis=1))  # 10 ms
    on = np.mean(envelope > envelope.max() / 4)
    assert 0.45 < on < 0.8, f"the bursts did not come through as bursts ({on:.2f} of the time on)"
    assert stats["talkFramesSent"] >= 150 and meter > 30
    assert status["talk"]["frames_rejected"] == 0 and latency["total"]["p95_ms"] < 500


SHADOW = "cam => document.querySelector(`opticlink-player[camera='${cam}']`).shadowRoot"
MESSAGE = SHADOW + ".querySelector('.talk-message').textContent"
TALKER = SHADOW + ".querySelector('.talker').textContent"
DENY_MICROPHONE = """navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Permission denied", "NotAllowedError"));"""


async def test_the_talk_button_says_why_talk_is_not_possible(tmp_path):
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    people = {name: credentials(tmp_path, name, role="operator") for name in ("Ada", "Bob", "Carol")}
    async with process("demo", "--port", "0", "--sim-port", "0", "--data-dir", str(tmp_path)) as (_, printed), \
            async_playwright() as pw:
        base = address(printed[0]).split("/login")[0]
        browser = await launch(pw)
        ada, bob, carol = [await (await browser.new_context()).new_page() for _ in range(3)]
        await carol.context.add_init_script(DENY_MICROPHONE)
        for page, name in ((ada, "Ada"), (bob, "Bob"), (carol, "Carol")):
            await sign_in(page, base, people[name])  # each their own user: the name others see
            await page.goto(f"{base}/")
            await page.wait_for_function("document.querySelectorAll('opticlink-player').length === 4")

        async def said(page, cam: str, expression: str = MESSAGE) -> str:
            await page.wait_for_function(f"({expression})('{cam}') !== ''", timeout=15000)
            return await page.evaluate(expression, cam)

        await ada.locator("opticlink-player[camera='cam1'] button.talk-button").click()
        assert await said(ada, "cam1", TALKER) == "you are talking"
        assert await said(bob, "cam1", TALKER) == "Ada is talking"
        await bob.locator("opticlink-player[camera='cam1'] button.talk-button").click()
        assert await said(bob, "cam1") == "Ada is talking: wait until they finish"

        await carol.locator("opticlink-player[camera='cam2'] button.talk-button").click()
        assert await said(carol, "cam2") == "no microphone permission: allow the microphone for this site"

        # cam4 has no speaker: the server asked it at start, and its talk button goes, saying why
        button = bob.locator("opticlink-player[camera='cam4'] button.talk-button")
        await button.wait_for(state="hidden", timeout=15000)
        assert (await button.get_attribute("title")).startswith("the camera has no speaker to talk to")
        await browser.close()


@pytest.mark.alone
async def test_over_https_the_page_logs_in_is_isolated_and_talks(tmp_path):
    # off localhost a browser gives the microphone and SharedArrayBuffer only to a secure page
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    microphone = tmp_path / "microphone.wav"
    _bursts(microphone)
    speakers = tmp_path / "speakers"
    async with process("demo", "--port", "0", "--sim-port", "0", "--tls", "true", "--data-dir", str(tmp_path),
                       "--backchannel-dir", str(speakers)) as (_, printed), async_playwright() as pw:
        link = address(printed[0])
        assert link.startswith("https://")
        browser = await launch(pw, extra_args=[f"--use-file-for-fake-audio-capture={microphone}"])
        context = await browser.new_context(ignore_https_errors=True)  # the self-signed certificate
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(link)  # the one-time link logs in
        player = page.locator("opticlink-player[camera='cam1']")
        await page.wait_for_function(
            "document.querySelector(\"opticlink-player[camera='cam1']\")?.stats?.audioFrames > 10", timeout=30000)
        isolated = await page.evaluate("crossOriginIsolated && window.isSecureContext")
        cookie = next(c for c in await context.cookies() if c["name"] == "opticlink_session")
        await player.locator("button.talk-button").click()
        await page.wait_for_function(
            "document.querySelector(\"opticlink-player[camera='cam1']\").shadowRoot"
            ".querySelector('.talker').textContent === 'you are talking'", timeout=10000)
        await asyncio.sleep(3)
        stats = await page.evaluate("document.querySelector(\"opticlink-player[camera='cam1']\").stats")
        await player.locator("button.talk-button").click()
        await asyncio.sleep(0.5)
        await browser.close()
    assert errors == [] and isolated and cookie["secure"] and cookie["httpOnly"]
    assert stats["audioTransport"] == "shared ring" and stats["underruns"] <= 1
    heard = decode_g711((speakers / "cam1.bin").read_bytes(), "pcmu").astype(float) / 32768
    assert len(heard) >= 2 * 8000 and _tone_share(heard, 8000) > 0.9
