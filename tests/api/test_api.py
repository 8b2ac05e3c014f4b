"""The HTTP API against hostile and ordinary callers (no cameras needed)."""

import httpx
import pytest
from pydantic import ValidationError

from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig, load_config
from opticlink.api.service import Service
from tests.auth.helpers import credentials


@pytest.fixture
async def client():
    service = Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")]))
    app = create_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                 headers=credentials(service).bearer) as c:
        yield c


async def test_every_response_is_cross_origin_isolated(client):
    for path in ("/", "/static/player.js", "/api/cameras", "/nope"):
        response = await client.get(path)
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert (await client.get("/static/player.js")).headers["content-type"].startswith("text/javascript")


async def test_unknown_cameras_and_paths_get_clear_errors(client):
    response = await client.get("/api/cameras/nope")
    assert response.status_code == 404 and "no camera 'nope'" in response.text
    for path in ("/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/" + "a" * 5000):
        assert (await client.get(path)).status_code == 404


async def test_camera_list_before_the_camera_ever_answers(client):
    cameras = (await client.get("/api/cameras")).json()
    assert cameras[0]["id"] == "door" and cameras[0]["state"] == "idle" and cameras[0]["sync"] is None


async def test_metrics_are_exposed(client):
    text = (await client.get("/metrics")).text
    assert "opticlink_camera_playing" in text


def test_config_validation_says_what_is_wrong(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - id: front door\n    url: rtsp://x/\n    audio_offset_ms: 5000\n")
    with pytest.raises(ValidationError) as info:
        load_config(path)
    text = str(info.value)
    assert "id" in text and "audio_offset_ms" in text
    path.write_text("cameras:\n  - id: door\n    url: rtsp://admin:pw@10.0.0.5/stream1\n    talk_packet_ms: 160\n")
    config = load_config(path)
    assert config.cameras[0].talk_packet_ms == 160 and config.port == 8080
