"""Cameras managed through the API while the service runs: add, edit, disable, remove (admins only), kept
over a restart, the YAML's cameras protected, probing, and `opticlink cameras export`."""

import asyncio
import contextlib
import io
import logging

import httpx
import pytest
import websockets
import yaml

from opticlink import cli
from opticlink.api import cameras as camera_api
from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.api.service import Service
from opticlink.live.protocol import FRAME
from opticlink.sim.server import SimulatorServer
from opticlink.store.cameras import CameraStore
from tests.auth.helpers import credentials
from tests.conftest import small_camera

SECRET = "s3cr3t-pa55"  # the simulated camera's password: must never come back


def _client(app, creds=None, base="http://127.0.0.1") -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app) if not isinstance(app, str) else None
    return httpx.AsyncClient(transport=transport, base_url=base if transport else app,
                             headers=creds.bearer if creds else None, timeout=20)


async def _until(predicate, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _state(client: httpx.AsyncClient, camera: str) -> str | None:
    response = await client.get(f"/api/cameras/{camera}")
    return response.json().get("state") if response.status_code == 200 else None


@pytest.mark.slow
async def test_add_edit_disable_remove_while_another_camera_keeps_running(caplog):
    caplog.set_level(logging.DEBUG)
    sims = [small_camera("cam1"), small_camera("cam2", username="admin", password=SECRET), small_camera("cam3")]
    async with SimulatorServer(sims, port=0) as sim, \
            running(ServiceConfig(cameras=[CameraConfig(id="door", url=sim.url("cam1"))], port=0)) as (service, base):
        creds = credentials(service, "ada", role="admin")
        texts: list[str] = []
        async with _client(base, creds) as admin:
            await _until(lambda: _until_state(admin, "door", "playing"))
            door = service.cameras["door"]
            door_session, door_connects = door.session, door.session.connects

            # add: starts at once, password write-only
            response = await admin.post("/api/cameras", json={
                "id": "yard", "name": "Yard", "url": sim.url("cam2"), "username": "admin", "password": SECRET})
            assert response.status_code == 201, response.text
            texts.append(response.text)
            added = response.json()
            assert added["password_set"] is True and "password" not in added
            assert added["declared"] is False and added["enabled"] is True
            await _until(lambda: _until_state(admin, "yard", "playing"))
            viewer = credentials(service, "vic", role="viewer")
            async with websockets.connect(base.replace("http", "ws") + "/api/cameras/yard/live", max_size=None,
                                          additional_headers=viewer.bearer) as ws:
                async with asyncio.timeout(10):
                    while not isinstance(message := await ws.recv(), bytes) or message[0] != FRAME:
                        pass  # the stream hello, config, talk state: then a frame

            # edit: only this camera restarts
            yard_session = service.cameras["yard"].session
            response = await admin.patch("/api/cameras/yard", json={"audio_offset_ms": 40})
            assert response.status_code == 200 and response.json()["audio_offset_ms"] == 40.0
            assert service.cameras["yard"].session is not yard_session
            await _until(lambda: _until_state(admin, "yard", "playing"))
            response = await admin.patch("/api/cameras/yard", json={"url": sim.url("cam3"), "password": ""})
            assert response.status_code == 200 and response.json()["password_set"] is False
            await _until(lambda: _until_state(admin, "yard", "playing"))
            assert service.cameras["door"].session is door_session and door_session.connects == door_connects

            # disable keeps the configuration; enable brings it back
            response = await admin.patch("/api/cameras/yard", json={"enabled": False})
            assert response.status_code == 200 and response.json()["enabled"] is False
            assert "yard" not in service.cameras and "yard" in service.disabled
            listing = {c["id"]: c for c in (await admin.get("/api/cameras")).json()}
            texts.append(str(listing))
            assert listing["yard"]["state"] == "disabled" and listing["yard"]["enabled"] is False
            assert listing["door"]["declared"] is True and listing["door"]["enabled"] is True
            assert (await admin.patch("/api/cameras/yard", json={"enabled": True})).status_code == 200
            await _until(lambda: _until_state(admin, "yard", "playing"))

            # the YAML's camera is not the API's to change
            for method in ("patch", "delete"):
                response = await admin.request(method.upper(), "/api/cameras/door",
                                               json={"name": "x"} if method == "patch" else None)
                assert response.status_code == 409 and "declared in cameras.yaml" in response.json()["detail"]

            # remove
            assert (await admin.delete("/api/cameras/yard")).status_code == 204
            assert (await admin.get("/api/cameras/yard")).status_code == 404
            assert "yard" not in service.cameras
            assert service.cameras["door"].session is door_session and door_session.connects == door_connects
            texts.append((await admin.get("/api/audit")).text)
        actions = [row.action for row in service.database.audit() if row.camera == "yard"]
        assert actions.count("camera_add") == 1 and actions.count("camera_remove") == 1
        assert actions.count("camera_edit") == 4
        assert "password changed" in " ".join(row.detail or "" for row in service.database.audit())
    assert not any(SECRET in text for text in texts)
    assert not any(SECRET in record.getMessage() for record in caplog.records)


async def _until_state(client: httpx.AsyncClient, camera: str, state: str) -> bool:
    return await _state(client, camera) == state


async def test_validation_names_each_field_and_ids_are_unique():
    service = Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")]))
    async with _client(create_app(service), credentials(service, "ada")) as admin:
        response = await admin.post("/api/cameras", json={"id": "../etc", "url": "http://x/"})
        assert response.status_code == 422
        fields = response.json()["fields"]
        assert set(fields) == {"url"} or set(fields) == {"id", "url"}
        assert "rtsp://" in fields["url"]
        response = await admin.post("/api/cameras", json={"id": "../etc", "url": "rtsp://192.0.2.1/s"})
        assert response.status_code == 422 and "letters, digits" in response.json()["fields"]["id"]
        response = await admin.post("/api/cameras", json={"id": "a", "url": "rtsp://192.0.2.1/s",
                                                          "audio_offset_ms": 5000, "talk_packet_ms": 7,
                                                          "colour": "red", "enabled": "yes"})
        fields = response.json()["fields"]
        assert response.status_code == 422 and set(fields) == {"audio_offset_ms", "talk_packet_ms", "colour",
                                                                "enabled"}
        assert fields["colour"] == "not a camera setting"
        assert (await admin.post("/api/cameras", json={"id": "a"})).json()["fields"] == {"url": "required"}
        assert (await admin.post("/api/cameras", content=b"{nope")).status_code == 400
        response = await admin.post("/api/cameras", json={"id": "a", "url": "rtsp://h/", "name": "n" * 5000})
        assert response.status_code == 422 and response.json()["fields"] == {"name": "at most 2000 characters"}
        assert (await admin.post("/api/cameras", content=b"[" * 20000)).status_code == 413
        response = await admin.post("/api/cameras", json={"id": "door", "url": "rtsp://192.0.2.1/s"})
        assert response.status_code == 409 and "id" in response.json()["fields"]
        response = await admin.post("/api/cameras", json={"id": "gate", "url": "rtsp://u:pw%40x@192.0.2.1/s",
                                                          "enabled": False})
        assert response.status_code == 201
        assert response.json()["url"] == "rtsp://192.0.2.1/s" and response.json()["username"] == "u"
        assert service.disabled["gate"].password == "pw@x"  # moved out of the URL, decoded
        response = await admin.patch("/api/cameras/gate", json={"id": "other"})
        assert response.status_code == 422 and "id" in response.json()["fields"]
        assert (await admin.patch("/api/cameras/nope", json={"name": "x"})).status_code == 404


async def test_non_admins_get_403_and_strangers_401():
    service = Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")]))
    app = create_app(service)
    body = {"id": "x", "url": "rtsp://192.0.2.1/s"}
    for role in ("viewer", "operator"):
        async with _client(app, credentials(service, role, role=role)) as caller:
            assert (await caller.post("/api/cameras", json=body)).status_code == 403
            assert (await caller.patch("/api/cameras/door", json={"name": "y"})).status_code == 403
            assert (await caller.delete("/api/cameras/door")).status_code == 403
            assert (await caller.post("/api/cameras/probe", json={"url": "rtsp://192.0.2.1/"})).status_code == 403
            listing = (await caller.get("/api/cameras")).json()
            assert listing[0]["declared"] is True and "config" not in listing[0]
    async with _client(app) as stranger:
        assert (await stranger.post("/api/cameras", json=body)).status_code == 401
        assert (await stranger.delete("/api/cameras/door")).status_code == 401
    assert "x" not in service.cameras


async def test_api_added_cameras_come_back_after_a_restart_and_the_file_wins(tmp_path):
    options = {"database": "file", "data_dir": tmp_path}
    declared = CameraConfig(id="door", url="rtsp://127.0.0.1:9/door")
    first = Service(ServiceConfig(cameras=[declared], **options))
    async with _client(create_app(first), credentials(first, "ada")) as admin:
        assert (await admin.post("/api/cameras", json={"id": "yard", "url": "rtsp://127.0.0.1:9/yard",
                                                       "password": SECRET, "username": "u"})).status_code == 201
        assert (await admin.post("/api/cameras", json={"id": "shed", "url": "rtsp://127.0.0.1:9/shed",
                                                       "enabled": False})).status_code == 201
        assert (await admin.patch("/api/cameras/yard/settings", json={"audio_offset_ms": 30})).status_code == 200
    CameraStore(first.database).put("door", {"id": "door", "url": "rtsp://127.0.0.1:9/other"}, True, 0.0)
    first.database.close()
    second = Service(ServiceConfig(cameras=[declared], **options))
    try:
        assert set(second.cameras) == {"door", "yard"} and set(second.disabled) == {"shed"}
        assert second.cameras["door"].config.url == "rtsp://127.0.0.1:9/door"  # the file wins
        assert second.cameras["yard"].config.password == SECRET
        assert second.cameras["yard"].config.audio_offset_ms == 30.0
        assert second.cameras["yard"].session.audio_offset_ms == 30.0
    finally:
        second.database.close()


@pytest.mark.slow
async def test_a_probe_lists_tracks_and_says_what_is_wrong_in_plain_words():
    sims = [small_camera("cam1"), small_camera("locked", username="admin", password=SECRET),
            small_camera("hevc", codec="h265", audio="aac")]
    service = Service(ServiceConfig())
    async with SimulatorServer(sims, port=0) as sim, _client(create_app(service), credentials(service)) as admin:
        good, wrong = await asyncio.gather(  # two at once: the limit
            admin.post("/api/cameras/probe", json={"url": sim.url("cam1")}),
            admin.post("/api/cameras/probe", json={"url": sim.url("locked"), "username": "admin",
                                                   "password": "not-" + SECRET}))
        closed, hevc = await asyncio.gather(_closed_port_probe(admin),
                                            admin.post("/api/cameras/probe", json={"url": sim.url("hevc")}))
    assert good.status_code == 200, good.text
    report = good.json()
    assert report["playing"] is True and report["authentication"] == "ok"
    assert {t["codec"].upper() for t in report["tracks"]} >= {"H264", "PCMU"}
    assert report["video"]["width"] == 320 and report["video"]["height"] == 180
    assert report["video"]["frame_rate"] and report["sender_reports"] > 0
    assert report["backchannel"] is not None
    assert wrong.json()["problems"] == ["wrong user name or password"]
    assert wrong.json()["authentication"] == "failed"
    assert any(p.startswith("no answer from 127.0.0.1:") for p in closed.json()["problems"])
    assert hevc.json()["problems"][0].startswith("H.265: a browser without H.265 support cannot show it")
    assert hevc.json()["audio"]["name"] == "AAC" and report["audio"]["name"] == "G.711 µ-law"
    assert SECRET not in good.text + wrong.text + closed.text
    assert [row.action for row in service.database.audit()].count("camera_probe") == 4


async def _closed_port_probe(admin: httpx.AsyncClient) -> httpx.Response:
    import socket

    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        return await admin.post("/api/cameras/probe", json={"url": f"rtsp://127.0.0.1:{port}/x"})


async def test_probes_beyond_the_limit_get_429(monkeypatch):
    monkeypatch.setattr(camera_api, "MAX_PROBES", 0)
    service = Service(ServiceConfig())
    async with _client(create_app(service), credentials(service)) as admin:
        response = await admin.post("/api/cameras/probe", json={"url": "rtsp://192.0.2.1/"})
        assert response.status_code == 429 and "Retry-After" in response.headers
        response = await admin.post("/api/cameras/probe", json={"url": "ftp://192.0.2.1/"})
        assert response.status_code == 422 and "url" in response.json()["fields"]


def test_cameras_export_loads_back_as_config(tmp_path, capsys):
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "cameras": [
        {"id": "door", "url": f"rtsp://admin:{SECRET}@192.0.2.10/s1", "audio_offset_ms": 20}]}))
    first = Service(ServiceConfig(data_dir=tmp_path / "data", database="file"))
    CameraStore(first.database).put("yard", CameraConfig(id="yard", url="rtsp://192.0.2.11/s", username="u",
                                                         password=SECRET).model_dump(mode="json"), False, 1.0)
    first.database.close()
    assert cli.main(["cameras", "export", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert SECRET not in text and "passwords omitted" in text and "declared in cameras.yaml" in text
    loaded = ServiceConfig.model_validate(yaml.safe_load(io.StringIO(text)))
    assert [c.id for c in loaded.cameras] == ["door", "yard"]
    assert loaded.cameras[0].audio_offset_ms == 20 and loaded.cameras[1].username == "u"
    assert cli.main(["cameras", "export", "--data-dir", str(tmp_path / "data"), "--with-passwords"]) == 0
    loaded = ServiceConfig.model_validate(yaml.safe_load(capsys.readouterr().out))
    assert [(c.id, c.password) for c in loaded.cameras] == [("yard", SECRET)]


@pytest.mark.slow
async def test_an_added_camera_records_and_its_recordings_stay_indexed_after_removal(tmp_path):
    async with SimulatorServer([small_camera("cam1")], port=0) as sim, \
            running(ServiceConfig(port=0, record=True, database="file", data_dir=tmp_path,
                                  segment_seconds=2)) as (service, base):
        async with _client(base, credentials(service, "ada")) as admin:
            assert (await admin.post("/api/cameras", json={"id": "yard", "url": sim.url("cam1")})).status_code == 201

            async def recorded() -> bool:
                recorder = service.cameras["yard"].recorder
                return recorder is not None and recorder.stats.frames > 50

            await _until(recorded)
            assert service.retention is not None and "yard" in service.retention.cameras
            assert (await admin.delete("/api/cameras/yard")).status_code == 204
        segments = service.recordings.segments("yard")
        assert segments and all(s.state == "done" for s in segments)
        assert all((service.config.recordings_root / s.path).exists() for s in segments)
