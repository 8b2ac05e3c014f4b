"""The admin's camera panel in headless Chromium against `opticlink serve`: adding a camera by its address
(Test connection first, a wrong password said in words), finding ONVIF cameras through one loopback probe
address (never multicast) and adding one from its ONVIF answer; each new camera then plays on the wall."""

import contextlib

import pytest

from opticlink.sim.server import SimulatorServer
from tests.auth.helpers import credentials, sign_in
from tests.live.test_player import STATS, address, browser_page, process
from tests.onvif.conftest import PASSWORD, USER, onvif_cameras

pytestmark = pytest.mark.browser

PANEL = "#ol-cameras"
FORM = "#ol-camera-form"


@contextlib.asynccontextmanager
async def served(tmp_path):
    """The simulator's ONVIF cameras (in this process; discovery on a loopback port) and `opticlink serve`
    with one of them declared (`porch`); yields the simulator, the service's address and an admin's login."""
    async with SimulatorServer(onvif_cameras(), port=0, onvif=True, discovery_port=0) as sim:
        config = tmp_path / "cameras.yaml"
        config.write_text(f"data_dir: {tmp_path}\nrecord: false\ncameras:\n"
                          f"  - id: porch\n    name: Porch\n    url: {sim.url('cam1')}\n")
        creds = credentials(tmp_path)
        async with process("serve", str(config), "--port", "0") as (_, printed):
            yield sim, address(printed[0]), creds


async def open_panel(page) -> None:
    await page.wait_for_selector("#cameras-button")
    if await page.locator(PANEL).is_hidden():
        await page.locator("#cameras-button").click()
    await page.wait_for_selector(f"{PANEL} tr[data-camera='porch']")


async def plays(page, camera: str) -> None:
    """The camera's player on the wall shows frames (30 s at most: a loaded machine starts slowly)."""
    await page.wait_for_function(f"({STATS})('{camera}')?.framesShown > 10", timeout=30000)


async def test_an_admin_adds_a_camera_by_its_address_tests_it_and_sees_it_play(tmp_path):
    async with served(tmp_path) as (sim, base, creds), browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(base)
        await open_panel(page)
        porch = page.locator(f"{PANEL} tr[data-camera='porch']")
        assert "declared in cameras.yaml" in await porch.text_content()
        assert await porch.get_by_role("button", name="Remove").count() == 0  # the file's: not editable here

        form = page.locator(FORM)
        await form.locator("input[name=id]").fill("gate")
        await form.locator("input[name=name]").fill("Gate")
        await form.locator("input[name=url]").fill(sim.url("cam2"))
        await form.locator("input[name=username]").fill(USER)
        await form.locator("input[name=password]").fill("not the password")
        await form.get_by_role("button", name="Test connection").click()
        await page.wait_for_function(f"document.querySelector('{FORM} .ol-probe')"
                                     ".textContent.includes('wrong user name or password')", timeout=20000)

        await form.locator("input[name=password]").fill(PASSWORD)
        await form.get_by_role("button", name="Test connection").click()
        await page.wait_for_function(f"document.querySelector('{FORM} .ol-probe')"
                                     ".textContent.includes('Found: 1 track')", timeout=20000)
        found = await form.locator(".ol-probe").text_content()
        assert "video H264" in found and "wrong user name" not in found, found

        await form.get_by_role("button", name="Save").click()  # the page reloads, the panel open again
        await page.wait_for_function(f"document.querySelector('{PANEL} tr[data-camera=gate]')", timeout=20000)
        await plays(page, "gate")
        assert "gate saved" in await page.locator(f"{PANEL} .ol-note").first.text_content()
        assert PASSWORD not in await page.content()

        gate = page.locator(f"{PANEL} tr[data-camera='gate']")
        await gate.get_by_role("button", name="Edit").click()  # the form shows its settings, never the password
        assert await form.locator("input[name=url]").input_value() == sim.url("cam2")
        assert await form.locator("input[name=password]").input_value() == ""
        await form.locator("input[name=name]").fill("Back gate")
        await form.get_by_role("button", name="Save").click()
        await page.wait_for_function(f"document.querySelector(\"{PANEL} tr[data-camera='gate']\")"
                                     "?.textContent.includes('Back gate')", timeout=20000)
        await page.locator(f"{PANEL} tr[data-camera='gate']").get_by_role("button", name="Disable").click()
        await page.wait_for_function(f"document.querySelector(\"{PANEL} tr[data-camera='gate']\")"
                                     "?.textContent.includes('gate · disabled')", timeout=20000)
        assert await gate.get_by_role("button", name="Enable").count() == 1

        page.on("dialog", lambda dialog: dialog.accept())  # "Remove camera Back gate?"
        await page.locator(f"{PANEL} tr[data-camera='gate']").get_by_role("button", name="Remove").click()
        await page.wait_for_function("document.querySelector(\"opticlink-player[camera='porch']\") && "
                                     "!document.querySelector(\"opticlink-player[camera='gate']\")", timeout=20000)
    assert errors == []


async def test_find_cameras_through_a_probe_address_and_add_one_from_its_onvif_answer(tmp_path):
    async with served(tmp_path) as (sim, base, creds), browser_page() as (page, errors):
        await sign_in(page, base, creds)
        await page.goto(f"{base}/?probe=127.0.0.1:{sim.onvif.discovery_port}")  # the advanced "Probe address"
        await open_panel(page)
        probe = page.locator(f"{PANEL} input[name=probe_address]")
        assert await probe.input_value() == f"127.0.0.1:{sim.onvif.discovery_port}"
        await page.get_by_role("button", name="Find cameras").click()
        await page.wait_for_selector(f"{PANEL} tr[data-device='cam2']", timeout=20000)
        device = page.locator(f"{PANEL} tr[data-device='cam1']")
        await device.get_by_role("button", name="Add").click()

        form = page.locator(FORM)
        await page.wait_for_function(f"document.querySelector('{FORM} input[name=url]').value === '{sim.url('cam1')}'",
                                     timeout=30000)
        assert await form.locator("input[name=id]").input_value() == "cam1"
        assert await form.locator("input[name=substream_url]").input_value() == sim.url("cam1", sub=True)
        assert "From ONVIF: cam1" in await form.locator(".ol-probe").text_content()

        await form.get_by_role("button", name="Save").click()
        await page.wait_for_function(f"document.querySelector('{PANEL} tr[data-camera=cam1]')", timeout=20000)
        await plays(page, "cam1")
        row = page.locator(f"{PANEL} tr[data-camera='cam1']")
        await row.get_by_role("button", name="Test audio").click()  # it has a speaker: the loop test, in words
        await page.wait_for_function(f"(t => t.length > 10 && !t.startsWith('testing'))(document.querySelector("
                                     f"\"{PANEL} tr[data-camera='cam1'] .ol-note\").textContent)", timeout=40000)
        said = await row.locator(".ol-note").text_content()
        assert "the server answered" not in said, said
    assert errors == []
