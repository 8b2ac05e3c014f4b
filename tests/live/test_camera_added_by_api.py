"""A camera added through the API (a script with a token, not the page's panel) appears on the live page
once it is reloaded, and plays there, beside the camera cameras.yaml declares."""

import httpx

from tests.auth.helpers import sign_in
from tests.live.test_player import STATS, browser_page, camera_and_service

PLAYERS = "[...document.querySelectorAll('opticlink-player')].map((p) => p.getAttribute('camera'))"


async def test_a_camera_added_through_the_api_appears_on_the_live_page_after_a_reload(tmp_path):
    async with camera_and_service(tmp_path, "--cameras", "2", yaml="record: false") as (_, url, base, creds), \
            browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(base)
        await page.wait_for_function(f"({STATS})('cam1')?.framesShown > 10", timeout=30000)
        before = await page.evaluate(PLAYERS)

        async with httpx.AsyncClient(base_url=base.rstrip("/"), headers=creds.bearer, timeout=20) as api:
            added = await api.post("/api/cameras", json={"id": "yard", "name": "Yard",
                                                         "url": url.rsplit("/", 1)[0] + "/cam2"})
            listed = [c["id"] for c in (await api.get("/api/cameras")).json()]
        assert added.status_code == 201, added.text
        assert await page.evaluate(PLAYERS) == before  # the page as loaded knows nothing of it yet

        await page.reload()
        await page.wait_for_selector(".ol-tile[data-camera='yard'] opticlink-player[camera='yard']", timeout=20000)
        await page.wait_for_function(f"({STATS})('yard')?.framesShown > 10", timeout=30000)
        await page.wait_for_function(f"({STATS})('cam1')?.framesShown > 10", timeout=30000)
        after = await page.evaluate(PLAYERS)
        label = await page.locator("opticlink-player[camera='yard']").get_attribute("label")
    assert errors == []
    assert before == ["cam1"] and listed == ["cam1", "yard"]
    assert after == ["cam1", "yard"] and label == "Yard"
