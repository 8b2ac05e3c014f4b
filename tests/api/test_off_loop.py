"""The catalog is read off the event loop: a page's burst of requests (its modules, a wall's timelines
at once) done on the loop held up every camera's frames (a 42 ms lateness spike every 10 s on the demo
page, where four timelines refreshed together)."""

from __future__ import annotations

import threading
import time

import pytest

from opticlink.api import app as app_module
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from tests.auth.helpers import asgi_client, credentials


@pytest.fixture
def service(tmp_path) -> Service:
    return Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")], data_dir=tmp_path,
                                 database="file"))



async def test_who_a_request_is_for_and_a_timeline_are_read_in_another_thread_than_the_loops(service, monkeypatch):
    creds = credentials(service, "ada")
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}
    identify, timeline = service.gate.identify, app_module.timeline

    def spy_identify(headers):
        seen["identify"] = threading.get_ident()
        return identify(headers)

    def spy_timeline(*args, **kwargs):
        seen["timeline"] = threading.get_ident()
        return timeline(*args, **kwargs)

    monkeypatch.setattr(service.gate, "identify", spy_identify)
    monkeypatch.setattr(app_module, "timeline", spy_timeline)
    now = time.time()
    async with asgi_client(service) as client:
        answer = await client.get("/api/cameras/door/timeline", params={"start": now - 3600, "end": now},
                                  headers=creds.cookie_header)
        refused = await client.get("/api/cameras/door/timeline", params={"start": now - 3600, "end": now})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"segments": [], "gaps": [], "talk": []}
    assert refused.status_code == 401
    assert set(seen) == {"identify", "timeline"}
    assert loop_thread not in seen.values(), seen
