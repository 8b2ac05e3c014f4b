"""The test and bench pages (tests/web) and the test-only routes are not the package's: the service
serves them only when `BENCH_ENV` names the pages' directory, and then only to signed-in users."""

from pathlib import Path

import httpx
import pytest

from opticlink.api.app import BENCH_ENV, create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from tests.auth.helpers import credentials

PAGES = Path(__file__).resolve().parents[1] / "web"


@pytest.fixture
def service():
    return Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")]))


def _client(service) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(service), client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_without_the_setting_there_are_no_bench_pages_and_no_latency_reset(service, monkeypatch):
    monkeypatch.delenv(BENCH_ENV, raising=False)
    admin = credentials(service)
    async with _client(service) as client:
        assert (await client.get("/static/bench/live.html", headers=admin.bearer)).status_code == 404
        assert (await client.delete("/api/hub/latency", headers=admin.bearer)).status_code == 405
        assert (await client.get("/api/hub/latency", headers=admin.bearer)).status_code == 200
        assert (await client.get("/static/player.js", headers=admin.bearer)).status_code == 200


async def test_with_the_setting_the_pages_are_served_to_signed_in_users_beside_the_player(service, monkeypatch):
    monkeypatch.setenv(BENCH_ENV, str(PAGES))
    admin, viewer = credentials(service), credentials(service, "vic", role="viewer")
    async with _client(service) as client:
        assert (await client.get("/static/bench/live.html")).status_code == 401
        page = await client.get("/static/bench/live.html", headers=viewer.bearer)
        assert page.status_code == 200 and 'import("/static/player.js")' in page.text
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        baseline = await client.get("/static/bench/baseline.js", headers=viewer.bearer)
        assert baseline.status_code == 200 and 'from "../g711.js"' in baseline.text
        # what "../" reaches from /static/bench/: the player's own files, still the package's
        assert (await client.get("/static/g711.js", headers=viewer.bearer)).status_code == 200
        assert (await client.get("/static/player.js", headers=viewer.bearer)).status_code == 200
        assert (await client.delete("/api/hub/latency")).status_code == 401
        assert (await client.delete("/api/hub/latency", headers=viewer.bearer)).status_code == 403
        assert (await client.delete("/api/hub/latency", headers=admin.bearer)).status_code == 204


def test_a_setting_naming_no_directory_fails_at_start(service, monkeypatch, tmp_path):
    monkeypatch.setenv(BENCH_ENV, str(tmp_path / "missing"))
    with pytest.raises(RuntimeError):
        create_app(service)
