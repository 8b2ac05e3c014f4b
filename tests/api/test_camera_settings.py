"""A camera's audio preferences edited at runtime by an admin: the API, who may, what is kept, and each
setting taking effect on the running camera without restarting it."""

import asyncio
import json

import httpx
import pytest
import websockets

from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.api.service import Service
from opticlink.live.feed import Viewer
from opticlink.live.protocol import CONFIG, FRAME
from opticlink.media import AudioConfig, MediaFrame, VideoConfig
from opticlink.sim.server import SimulatorServer
from tests.auth.helpers import credentials
from tests.conftest import small_camera

DEFAULTS = {"live_audio": True, "record_audio": True, "talkback": True, "audio_offset_ms": 0.0, "half_duplex": False}


def _service(**options) -> Service:
    return Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")], **options))


def _client(service: Service, creds) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)), base_url="http://127.0.0.1",
                             headers=creds.bearer)


async def test_an_admin_changes_settings_and_everyone_reads_them():
    service = _service()
    async with _client(service, credentials(service, "ada", role="admin")) as admin, \
            _client(service, credentials(service, "vic", role="viewer")) as viewer:
        assert (await viewer.get("/api/cameras/door/settings")).json() == DEFAULTS
        response = await admin.patch("/api/cameras/door/settings", json={"live_audio": False, "audio_offset_ms": 120})
        assert response.status_code == 200
        assert response.json() == {**DEFAULTS, "live_audio": False, "audio_offset_ms": 120.0}
        assert (await viewer.get("/api/cameras/door/settings")).json() == response.json()
        assert (await admin.get("/api/cameras/nope/settings")).status_code == 404
    runtime = service.cameras["door"]
    assert runtime.config.live_audio is False and runtime.live.audio is False  # in effect, not only stored
    assert runtime.session.audio_offset_ms == 120.0


async def test_only_admins_change_settings_and_bad_changes_are_refused():
    service = _service()
    async with _client(service, credentials(service, "ada", role="admin")) as admin, \
            _client(service, credentials(service, "vic", role="viewer")) as viewer, \
            _client(service, credentials(service, "otto", role="operator")) as operator:
        for caller in (viewer, operator):
            response = await caller.patch("/api/cameras/door/settings", json={"talkback": False})
            assert response.status_code == 403
        for body in ({"url": "rtsp://evil/"}, {"password": "x"}, {"audio_offset_ms": 2001},
                     {"audio_offset_ms": -2000.5}, {"live_audio": "maybe"}, {"talk_packet_ms": 40}):
            assert (await admin.patch("/api/cameras/door/settings", json=body)).status_code == 422, body
        assert (await admin.patch("/api/cameras/nope/settings", json={"talkback": False})).status_code == 404
        assert (await admin.get("/api/cameras/door/settings")).json() == DEFAULTS
    assert not [row for row in service.database.audit() if row.action == "settings"]


async def test_a_change_is_audited_with_what_changed():
    service = _service()
    async with _client(service, credentials(service, "ada", role="admin")) as admin:
        await admin.patch("/api/cameras/door/settings", json={"half_duplex": True, "record_audio": True})
        await admin.patch("/api/cameras/door/settings", json={"record_audio": True})  # no change: no entry
    rows = [row for row in service.database.audit() if row.action == "settings"]
    assert len(rows) == 1
    assert rows[0].user == "ada" and rows[0].camera == "door" and rows[0].detail == "half_duplex False -> True"


async def test_settings_are_kept_over_the_yaml_across_a_restart(tmp_path):
    options = {"database": "file", "data_dir": tmp_path}
    first = _service(**options)
    async with _client(first, credentials(first, "ada", role="admin")) as admin:
        changed = await admin.patch("/api/cameras/door/settings",
                                    json={"talkback": False, "audio_offset_ms": -80, "record_audio": False})
        await admin.patch("/api/cameras/door/settings", json={"live_audio": False})  # merged with the first
    first.database.close()
    second = _service(**options)
    try:
        expected = {**changed.json(), "live_audio": False}
        async with _client(second, credentials(second, "vic", role="viewer")) as viewer:
            assert (await viewer.get("/api/cameras/door/settings")).json() == expected
        runtime = second.cameras["door"]
        assert runtime.session.audio_offset_ms == -80.0 and runtime.live.audio is False
        assert runtime.status()["talk"] is None  # talkback off
    finally:
        second.database.close()


PICTURE = VideoConfig("h264", (bytes.fromhex("6742c01ed9005005bb011000000300100000030320f162e480"),
                               bytes.fromhex("68cb8cb2")))


def _video(pts_ms: int) -> MediaFrame:
    return MediaFrame(0, "video", "h264", pts_ms * 1000, 40000, True, b"\x00\x00\x00\x02\x65\x00", PICTURE)


def _audio(pts_ms: int, config: AudioConfig) -> MediaFrame:
    return MediaFrame(1, "audio", "pcmu", pts_ms * 1000, 20000, True, b"\xff" * 160, config)


def _kinds(viewer: Viewer) -> list[str]:
    """What a viewer has queued: config (with its track kinds), video, audio; and empties the queue."""
    out = []
    for message in viewer._queue:
        data = message.data
        if isinstance(data, bytes) and data[0] == CONFIG:
            out.append("config:" + ",".join(t["kind"] for t in json.loads(data[1:])["tracks"]))
        elif isinstance(data, bytes) and data[0] == FRAME:
            out.append("video" if message.video else "audio")
    viewer._queue.clear()
    return out


async def test_live_audio_off_stops_audio_reaching_viewers_at_once_and_on_brings_it_back():
    service = _service()
    runtime = service.cameras["door"]
    viewer = Viewer("vic")
    runtime.live.attach(viewer, 0.0)
    sound = AudioConfig("pcmu", 8000)
    runtime.live.publish(_video(0), 0.0)
    runtime.live.publish(_audio(0, sound), 0.0)
    assert _kinds(viewer) == ["config:video", "video", "config:video,audio", "audio"]
    service.apply_settings("door", {"live_audio": False})
    # the players are told the sound is gone (they run on the picture's clock), then get no more of it
    assert _kinds(viewer) == ["config:video"]
    for i in range(1, 5):
        runtime.live.publish(_video(i * 40), i * 0.04)
        runtime.live.publish(_audio(i * 40, sound), i * 0.04)
    assert _kinds(viewer) == ["video"] * 4
    late = Viewer("late")
    runtime.live.attach(late, 0.2)
    assert _kinds(late)[0] == "config:video"
    service.apply_settings("door", {"live_audio": True})
    runtime.live.publish(_audio(200, sound), 0.2)
    assert _kinds(viewer) == ["config:video,audio", "audio"]


async def _talk_answer(ws) -> dict:
    """The next talk message carrying a state or an availability, skipping media."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(message, str):
            state = json.loads(message)
            if state.get("state") is not None or "available" in state:
                return state


async def test_talk_and_the_audio_offset_follow_the_settings_on_the_running_camera():
    async with SimulatorServer([small_camera("cam1")], port=0) as sim, \
            running(ServiceConfig(cameras=[CameraConfig(id="cam1", url=sim.url("cam1"))], port=0)) as (service, base):
        runtime = service.cameras["cam1"]
        await runtime.session.wait_playing(10)
        admin = httpx.AsyncClient(base_url=base, headers=credentials(service, "ada", role="admin").bearer)
        talker = credentials(service, "otto", role="operator")
        url = base.replace("http", "ws") + "/api/cameras/cam1/live"
        async with admin, websockets.connect(url, additional_headers=talker.bearer, max_queue=None,
                                             max_size=None) as ws:
            assert (await _talk_answer(ws))["available"] is True
            await ws.send(json.dumps({"type": "talk", "action": "start"}))
            assert (await _talk_answer(ws))["state"] == "granted"
            assert not any(v.mute_audio for v in runtime.live.viewers)  # half duplex off

            # talkback off: the active talk ends, with the reason, and new talk is refused
            response = await admin.patch("/api/cameras/cam1/settings", json={"talkback": False})
            assert response.json()["talkback"] is False
            ended = await _talk_answer(ws)
            assert ended["state"] == "error" and ended["reason"] == "talkback is off for this camera"
            assert (await _talk_answer(ws))["available"] is False
            assert runtime.talk is not None and runtime.talk.talker is None
            await ws.send(json.dumps({"type": "talk", "action": "start"}))
            refused = await _talk_answer(ws)
            assert refused == {"type": "talk", "state": "unavailable", "reason": "talkback is off for this camera"}
            rows = [row for row in service.database.audit() if row.action == "settings"]
            assert rows[0].detail == "talkback True -> False, otto's talk ended"

            # on again, with half duplex now: the same connection may talk, and the talker is muted
            await admin.patch("/api/cameras/cam1/settings", json={"talkback": True, "half_duplex": True})
            assert (await _talk_answer(ws))["available"] is True
            await ws.send(json.dumps({"type": "talk", "action": "start"}))
            assert (await _talk_answer(ws))["state"] == "granted"
            assert [v.mute_audio for v in runtime.live.viewers] == [True]

            # the running sync engine takes a new offset; the camera session is not restarted
            await admin.patch("/api/cameras/cam1/settings", json={"audio_offset_ms": 150})
            engine = runtime.session.engine
            assert engine is not None and engine.stats().audio_offset_ms == pytest.approx(150)
            assert runtime.session.connects == 1 and runtime.session.state == "playing"
            assert runtime.status()["sync"]["audio_offset_ms"] == pytest.approx(150)
