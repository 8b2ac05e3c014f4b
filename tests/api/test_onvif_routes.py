"""`POST /api/onvif/discover` and `/api/onvif/import` against the simulator's ONVIF devices on loopback (never
multicast): admins only, the proposed camera without its password, refusals in words, audited."""

import asyncio

import httpx
import pytest

from opticlink.api import onvif as onvif_api
from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from opticlink.sim.server import SimulatorServer
from tests.auth.helpers import credentials
from tests.onvif.conftest import PASSWORD, USER, onvif_cameras


def _client(app, creds=None) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                             headers=creds.bearer if creds else None, timeout=30)


def _service() -> Service:
    return Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")]))


@pytest.fixture
async def onvif_sim():
    """cam1 open with a sub-stream and a speaker, cam2 behind USER/PASSWORD; discovery on a loopback port."""
    server = SimulatorServer(onvif_cameras(), port=0, onvif=True, discovery_port=0)
    await server.start()
    yield server
    await server.close()


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


async def test_only_admins_may_discover_or_import():
    service = _service()
    app = create_app(service)
    calls = [("/api/onvif/discover", {"address": "127.0.0.1:9"}), ("/api/onvif/import", {"host": "127.0.0.1"})]
    async with _client(app) as anonymous:
        for path, body in calls:
            assert (await anonymous.post(path, json=body)).status_code == 401
    for role in ("viewer", "operator"):
        async with _client(app, credentials(service, role, role=role)) as caller:
            for path, body in calls:
                response = await caller.post(path, json=body)
                assert response.status_code == 403 and response.json()["detail"] == "admins only"


async def test_discover_lists_the_simulators_cameras_with_where_to_import_them(onvif_sim):
    service = _service()
    async with _client(create_app(service), credentials(service)) as admin:
        response = await admin.post("/api/onvif/discover",
                                    json={"address": f"127.0.0.1:{onvif_sim.onvif.discovery_port}", "timeout": 0.5})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["multicast"] is False
    by_name = {d["name"]: d for d in answer["devices"]}
    assert set(by_name) == {"cam1", "cam2"}
    for name, device in by_name.items():
        assert device["xaddrs"] == [onvif_sim.onvif_url(name)]
        assert (device["host"], device["port"]) == ("127.0.0.1", _port(onvif_sim.onvif_url(name)))
    audited = [row.detail or "" for row in service.gate.db.audit(10) if row.action == "onvif_discover"]
    assert any("2 devices" in detail for detail in audited), audited


async def test_import_proposes_a_camera_without_its_password_and_refuses_a_wrong_one_in_words(onvif_sim):
    service = _service()
    port = _port(onvif_sim.onvif_url("cam2"))
    async with _client(create_app(service), credentials(service)) as admin:
        good = await admin.post("/api/onvif/import", json={"host": "127.0.0.1", "port": port,
                                                           "username": USER, "password": PASSWORD})
        wrong = await admin.post("/api/onvif/import", json={"host": "127.0.0.1", "port": port,
                                                            "username": USER, "password": "not-it-at-all"})
        open_one = await admin.post("/api/onvif/import",
                                    json={"host": "127.0.0.1", "port": _port(onvif_sim.onvif_url("cam1"))})
    assert good.status_code == 200, good.text
    assert PASSWORD not in good.text
    camera = good.json()["camera"]
    assert camera["url"] == onvif_sim.url("cam2") and camera["username"] == USER and "password" not in camera
    assert camera["id"] == "cam2" and camera["talkback"] is False
    CameraConfig.model_validate({**camera, "password": PASSWORD})  # what POST /api/cameras takes
    assert wrong.status_code == 422 and wrong.json()["detail"] == "the camera refused the user name or password"
    assert open_one.status_code == 200, open_one.text
    cam1 = open_one.json()
    assert cam1["camera"]["substream_url"] == onvif_sim.url("cam1", sub=True)
    assert cam1["camera"]["talkback"] is True and len(cam1["profiles"]) == 2
    details = " ".join(row.detail or "" for row in service.gate.db.audit(20) if row.action == "onvif_import")
    assert "refused" in details and PASSWORD not in details


async def test_hostile_or_wrong_input_gets_a_clear_refusal():
    service = _service()
    async with _client(create_app(service), credentials(service)) as admin:
        for address in ("no-port", "127.0.0.1:0", "127.0.0.1:99999", "a b:80", "[::1", "x" * 400):
            response = await admin.post("/api/onvif/discover", json={"address": address})
            assert response.status_code == 422, (address, response.text)
        response = await admin.post("/api/onvif/import", json={"host": "evil host/../", "port": 80})
        assert response.status_code == 422 and "host name or IP address" in response.json()["detail"]
        response = await admin.post("/api/onvif/import", json={"host": "127.0.0.1", "port": 70000})
        assert response.status_code == 422
        response = await admin.post("/api/onvif/import", json={"host": "127.0.0.1", "port": 9, "extra": 1})
        assert response.status_code == 422
        # nothing listens on port 9 of loopback: a prompt refusal in words, not a hang
        started = asyncio.get_running_loop().time()
        response = await admin.post("/api/onvif/import", json={"host": "127.0.0.1", "port": 9})
        assert response.status_code == 422 and "127.0.0.1:9" in response.json()["detail"]
        assert asyncio.get_running_loop().time() - started < onvif_api.IMPORT_TIMEOUT_S + 5


@pytest.mark.slow
async def test_more_than_two_at_once_are_refused_with_429():
    service = _service()
    async with _client(create_app(service), credentials(service)) as admin:
        # two discoveries that wait for answers that never come (a port nothing answers on), then a third
        body = {"address": "127.0.0.1:9", "timeout": 2.0}
        first = [asyncio.create_task(admin.post("/api/onvif/discover", json=body)) for _ in range(2)]
        await asyncio.sleep(0.5)
        third = await admin.post("/api/onvif/discover", json=body)
        answers = await asyncio.gather(*first)
    assert third.status_code == 429 and "Retry-After" in third.headers
    assert [a.status_code for a in answers] == [200, 200] and answers[0].json()["devices"] == []
