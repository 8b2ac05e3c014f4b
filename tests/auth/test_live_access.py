"""Who may open the live WebSocket and who may talk through it: a session or token, our own Origin
and Host, the role and the camera's talk permission; talk is owned by the connection."""

import asyncio
import json
import socket

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.live.protocol import encode_talk
from tests.auth.helpers import credentials

START = json.dumps({"type": "talk", "action": "start"})
STOP = json.dumps({"type": "talk", "action": "stop"})


def _live(base: str, camera: str = "cam1") -> str:
    return base.replace("http", "ws", 1) + f"/api/cameras/{camera}/live"


def _connect(url: str, headers: dict[str, str] | None = None, **options):  # type: ignore[no-untyped-def]
    return websockets.connect(url, additional_headers=headers, max_queue=None, max_size=None, **options)


async def _closed(ws) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code, info.value.rcvd.reason


async def _talk(ws, want=("granted", "busy", "unavailable", "error")) -> dict:  # type: ignore[no-untyped-def]
    """The next talk message with a `state` (or the first one, with `you`), skipping media."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(message, str):
            data = json.loads(message)
            if data.get("state") in want or ("you" in data and "you" in want):
                return data


@pytest.fixture
async def unreachable():
    """The service with one camera that never answers: enough for everything but a granted talk."""
    config = ServiceConfig(cameras=[CameraConfig(id="cam1", url="rtsp://127.0.0.1:9/none")], port=0)
    async with running(config) as (service, base):
        yield service, base


@pytest.fixture
async def served(simulator):
    config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=simulator.url("cam1"))], port=0)
    async with running(config) as (service, base):
        yield service, base


async def test_a_websocket_without_a_session_is_closed_4401(unreachable):
    _, base = unreachable
    async with _connect(_live(base)) as ws:
        assert await _closed(ws) == (4401, "log in first")
    async with _connect(_live(base), {"Cookie": "opticlink_session=forged"}) as ws:
        assert (await _closed(ws))[0] == 4401


async def test_a_websocket_from_a_page_of_another_origin_is_closed_4403(unreachable):
    service, base = unreachable
    creds = credentials(service)
    async with _connect(_live(base), creds.cookie_header, origin="http://evil.example") as ws:
        code, reason = await _closed(ws)
        assert code == 4403 and "another origin" in reason
    async with _connect(_live(base), creds.cookie_header, origin=base) as ws:  # our own page
        assert (await _talk(ws, ("you",)))["you"] == "tester"
    # a foreign page on our own address but another port is another origin too
    async with _connect(_live(base), creds.cookie_header, origin=base.rsplit(":", 1)[0] + ":1") as ws:
        assert (await _closed(ws))[0] == 4403


async def test_a_websocket_to_a_rebound_host_name_is_closed_4403(unreachable):
    service, base = unreachable
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    url = f"ws://evil.example:{port}/api/cameras/cam1/live"  # the name an attacker pointed at our address
    async with _connect(url, credentials(service).cookie_header, sock=sock, origin=f"http://evil.example:{port}") as ws:
        code, reason = await _closed(ws)
    assert code == 4403 and "host name" in reason


async def test_an_unknown_camera_is_closed_4404(unreachable):
    service, base = unreachable
    async with _connect(_live(base, "nope"), credentials(service).bearer) as ws:
        assert await _closed(ws) == (4404, "no camera 'nope'")


async def test_a_viewer_cannot_talk(unreachable):
    service, base = unreachable
    async with _connect(_live(base), credentials(service, "vic", role="viewer").cookie_header) as ws:
        hello = await _talk(ws, ("you",))
        assert hello["available"] is False and "viewers may not talk" in hello["reason"]
        await ws.send(START)
        answer = await _talk(ws)
        assert answer["state"] == "unavailable" and "viewers may not talk" in answer["reason"]
    assert service.cameras["cam1"].talk.talker is None


async def test_an_operator_talks_only_to_the_cameras_they_are_allowed(served):
    service, base = served
    elsewhere = credentials(service, "otto", role="operator", talk=["garage"])
    here = credentials(service, "opal", role="operator", talk=["cam1"])
    async with _connect(_live(base), elsewhere.cookie_header) as ws:
        await ws.send(START)
        answer = await _talk(ws)
        assert answer["state"] == "unavailable" and "may not talk to cam1" in answer["reason"]
    async with _connect(_live(base), here.cookie_header) as ws:
        await ws.send(START)
        assert (await _talk(ws))["state"] == "granted"
        await ws.send(STOP)


async def test_a_second_connection_of_the_same_user_cannot_stop_or_feed_the_talker(served):
    service, base = served
    talk = service.cameras["cam1"].talk
    ada, bob = credentials(service, "ada", role="operator"), credentials(service, "bob", role="operator")
    async with _connect(_live(base), ada.cookie_header) as first, \
            _connect(_live(base), ada.cookie_header) as second, _connect(_live(base), bob.bearer) as other:
        await first.send(START)
        assert (await _talk(first))["state"] == "granted"
        owner = talk.talker
        await second.send(STOP)  # the same user name, another connection
        await second.send(encode_talk(1, 8000, bytes(320)))
        await second.send(START)
        busy = await _talk(second)
        assert busy == {"type": "talk", "state": "busy", "talker": "ada"}  # others see the user name
        assert talk.talker == owner and talk.talker.startswith("ada#")
        await other.send(STOP)
        await asyncio.sleep(0.2)
        assert talk.talker == owner
        await first.send(STOP)
        await asyncio.sleep(0.2)
        assert talk.talker is None
    await asyncio.sleep(0.2)
    entries = [(row.user, row.action, row.camera) for row in reversed(service.gate.db.audit())]
    assert ("ada", "talk_start", "cam1") in entries and ("ada", "talk_stop", "cam1") in entries
    assert entries.count(("ada", "watch_start", "cam1")) == 2 and ("bob", "watch_stop", "cam1") in entries
    assert [a for u, a, _ in entries if u == "ada" and a.startswith("talk")] == ["talk_start", "talk_stop"]


async def test_a_deeply_nested_control_message_gets_an_error_and_the_connection_lives(unreachable):
    service, base = unreachable
    async with _connect(_live(base), credentials(service).bearer) as ws:
        await ws.send("[" * 4000)
        answer = await _talk(ws)
        assert answer == {"type": "talk", "state": "error", "reason": "control message nested too deeply"}
        await ws.send(json.dumps({"type": "talk", "action": "dance"}))
        assert (await _talk(ws))["reason"] == "unknown control message"  # still served


async def test_an_open_live_socket_closes_when_its_user_is_removed_or_logged_out(unreachable, monkeypatch):
    from opticlink.api import app as app_module

    monkeypatch.setattr(app_module, "RECHECK_S", 0.3)
    service, base = unreachable
    gone = credentials(service, "gone", "viewer")
    staying = credentials(service, "staying", "viewer")
    async with _connect(_live(base), gone.cookie_header) as ws, _connect(_live(base), staying.cookie_header) as other:
        await _talk(ws, want=("you",))
        service.database.remove_user("gone")
        code, reason = await _closed(ws)
        assert code == 4401 and "log in again" in reason
        await asyncio.sleep(1.0)
        assert other.state.name == "OPEN"  # the other user's socket is untouched
