"""A camera's diagnostics page has its own address, /cameras/{id}/diagnostics: served to any logged-in role,
404 for a camera that does not exist, a 401 that takes a browser on to the login page (and back) without
credentials; the former /static/diagnostics.html?camera=ID still serves the page, which reads its camera
from either address; the wall's tiles link the new one."""

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from opticlink.api.app import WEB_DIR, create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from tests.auth.helpers import credentials

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service():
    return Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none", talkback=False),
                                          CameraConfig(id="back-gate_2", url="rtsp://127.0.0.1:9/x", talkback=False)]))


def _client(service, **options) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)), base_url="http://127.0.0.1:8080",
                             **options)


async def test_the_diagnostics_page_is_served_at_its_own_address_to_any_logged_in_role(service):
    page = (WEB_DIR / "diagnostics.html").read_text()
    viewer = credentials(service, "vic", role="viewer")
    async with _client(service, headers=viewer.bearer) as client:
        for camera in ("door", "back-gate_2"):
            response = await client.get(f"/cameras/{camera}/diagnostics")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/html") and response.text == page
            assert response.headers["cross-origin-embedder-policy"] == "require-corp"  # as every page
        assert (await client.get("/cameras/nope/diagnostics")).status_code == 404
        # the former address still serves the page
        old = await client.get("/static/diagnostics.html?camera=door")
        assert old.status_code == 200 and old.text == page
    async with _client(service, cookies=viewer.cookies) as browser:  # a session cookie, as a browser has
        assert (await browser.get("/cameras/door/diagnostics")).status_code == 200


async def test_without_credentials_the_page_leads_to_the_login_page_and_back(service):
    async with _client(service) as client:
        response = await client.get("/cameras/door/diagnostics")
        assert response.status_code == 401  # as every route without credentials (tests/auth checks them all)
        assert response.headers["content-type"].startswith("text/html")
        target = "/login?next=/cameras/door/diagnostics"
        assert f'http-equiv="refresh" content="0; url={target}"' in response.text
        assert f'href="{target}"' in response.text
        odd = await client.get("/cameras/%3Cscript%3E/diagnostics")  # the path is quoted, never echoed as is
        assert odd.status_code == 401 and "<script>" not in odd.text
        assert "%3Cscript%3E" in odd.text
        assert (await client.get("/cameras/door/other")).headers["content-type"] == "application/json"
        login = await client.get("/login?next=/cameras/door/diagnostics")
        assert login.status_code == 200  # the login page takes `next` and returns there after logging in


def test_the_wall_links_each_tile_to_its_diagnostics_address():
    wall = (WEB_DIR / "wall.js").read_text()
    assert "href: `/cameras/${encodeURIComponent(camera.id)}/diagnostics`" in wall
    assert "/static/diagnostics.html" not in wall


def test_the_page_reads_its_camera_from_either_address():
    script = """
      import { cameraOf } from "./src/opticlink/web/diagnostics.js";
      const at = (pathname, search = "") => cameraOf({ pathname, search });
      console.log(JSON.stringify([at("/cameras/door/diagnostics"), at("/cameras/back-gate_2/diagnostics/"),
        at("/cameras/a%20b/diagnostics"), at("/static/diagnostics.html", "?camera=door"),
        at("/static/diagnostics.html"), at("/cameras/%E0%A4%A/diagnostics")]));
    """
    out = subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == '["door","back-gate_2","a b","door","",""]'
    html = (WEB_DIR / "diagnostics.html").read_text()
    assert re.search(r"import \{ cameraOf, mount \} from \"/static/diagnostics.js\"", html)
    assert "cameraOf(location)" in html
