"""A camera's audio settings on the page, in headless Chromium: an admin's form changes the running
camera; the picture plays on without the sound; a viewer has no form."""

import asyncio

import httpx

from tests.auth.helpers import credentials, sign_in
from tests.live.test_player import STATS, browser_page, camera_and_service


async def test_an_admin_switches_live_audio_off_on_the_page_and_the_picture_plays_on(tmp_path):
    async with camera_and_service(tmp_path) as (_, _, base, creds), browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(base)
        await page.wait_for_function(f"({STATS})('cam1')?.clock === 'audio'", timeout=30000)
        player = page.locator("opticlink-player[camera='cam1']")
        await player.locator(".ol-settings-button").click()
        form = player.locator(".ol-settings")
        await form.and_(page.locator("[data-loaded=true]")).wait_for()
        assert await form.get_by_label("Live audio").is_checked()

        await form.get_by_label("Live audio").uncheck()
        await form.get_by_text("saved: in effect now").wait_for()
        offset = form.locator("input[name=audio_offset_ms]")
        await offset.fill("120")
        await offset.press("Enter")
        await page.wait_for_function("""() => document.querySelector("opticlink-player[camera='cam1']")
            .shadowRoot.querySelector(".ol-note").textContent.startsWith("saved")""")
        await page.wait_for_function(f"({STATS})('cam1')?.clock === 'wall'", timeout=10000)
        shown = (await page.evaluate(f"({STATS})('cam1')"))["framesShown"]
        await asyncio.sleep(2.0)
        after = await page.evaluate(f"({STATS})('cam1')")
        async with httpx.AsyncClient(base_url=base, headers=creds.bearer) as api:
            settings = (await api.get("/api/cameras/cam1/settings")).json()
            status = (await api.get("/api/cameras/cam1")).json()

        viewer = credentials(tmp_path, "vic", role="viewer")
        await sign_in(page, base, viewer)
        await page.reload()
        await page.wait_for_function("document.getElementById('user').textContent.length > 0")
        viewer_buttons = await page.locator("opticlink-player .ol-settings-button").count()
    assert errors == []
    assert settings["live_audio"] is False and settings["audio_offset_ms"] == 120.0
    assert status["connects"] == 1 and status["sync"]["audio_offset_ms"] == 120.0  # the same camera session
    assert after["clock"] == "wall" and after["framesShown"] > shown + 20  # no sound, the picture plays on
    assert viewer_buttons == 0
