"""The diagnostics page at its own address, reached from the wall's tile, against `opticlink serve` and a
simulated camera that sends no RTCP Sender Reports (`opticlink sim --faults sender_reports=absent`): the
verdict names that fault in plain words, and the recording's gaps are shown; without a session the page's
address leads to the login page."""

import asyncio
import time

from tests.auth.helpers import sign_in
from tests.live.test_player import SCREENSHOTS, browser_page, camera_and_service

NAMED = "the camera sends no RTCP Sender Reports: lip sync relies on arrival times, accurate to ±"


async def test_the_tiles_diagnostics_link_opens_the_page_whose_verdict_names_missing_sender_reports(tmp_path):
    async with camera_and_service(tmp_path, "--faults", "sender_reports=absent") as (_, _, base, creds), \
            browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(base)
        link = page.locator(".ol-tile[data-camera='cam1'] a.ol-diagnostics")
        await link.wait_for(state="attached")
        href = await link.get_attribute("href")
        await page.locator(".ol-tile[data-camera='cam1']").hover()  # the link shows on the hovered tile
        async with page.expect_popup() as opened:  # target=_blank: a page of its own
            await link.click()
        diagnostics = await opened.value
        await diagnostics.wait_for_load_state()
        path = diagnostics.url.removeprefix(base.rstrip("/"))
        verdict = ""
        deadline = time.monotonic() + 60  # "sends none" once it has been timed by arrival for 10 s
        while NAMED not in verdict and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            verdict = await diagnostics.locator("#verdict").text_content() or ""
        heading = await diagnostics.locator("#camera").text_content()
        recording = diagnostics.locator("#recording")
        await recording.wait_for(state="visible", timeout=20000)  # `serve` records: the gaps are counted
        recorded = await recording.text_content() or ""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await diagnostics.screenshot(path=str(SCREENSHOTS / "diagnostics-no-sender-reports.png"), full_page=True)

        # without a session the page's address leads to the login page, which leads back to it
        stranger = await page.context.browser.new_page()
        await stranger.goto(f"{base.rstrip('/')}/cameras/cam1/diagnostics")
        await stranger.wait_for_url("**/login?next=/cameras/cam1/diagnostics", timeout=10000)
        await stranger.close()
    assert errors == []
    assert href == "/cameras/cam1/diagnostics" and path == href, (href, diagnostics.url)
    assert heading == "cam1"
    assert NAMED in verdict, verdict
    assert " gap" in recorded and "frames skipped since the service started" in recorded, recorded
