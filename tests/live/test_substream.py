"""Sub-streams: `?stream=sub` on the live WebSocket plays the camera's low-resolution stream from its own
session, started by its first viewer and stopped a while after its last; the main stream plays beside it;
a camera without one sends its main stream and says so; access is checked as for the main stream."""

from __future__ import annotations

import asyncio
import base64
import json

import av
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from opticlink.api import service as service_module
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.api.service import substream_client
from opticlink.live.protocol import CONFIG, FRAME, KEYFRAME, decode_frame_header
from opticlink.sim.presets import SUB_HEIGHT, SUB_WIDTH, camera
from tests.auth.helpers import credentials

PASSWORD = "s3cret-sub-pass"
MAIN = (640, 360)


def _live(base: str, camera_id: str = "cam1", stream: str | None = None) -> str:
    url = base.replace("http", "ws", 1) + f"/api/cameras/{camera_id}/live"
    return url if stream is None else f"{url}?stream={stream}"


def _connect(url: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return websockets.connect(url, additional_headers=headers, max_queue=None, max_size=None)


async def _hello(ws) -> dict:  # type: ignore[no-untyped-def]
    message = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(message, str), "the first message is the stream's hello (text)"
    hello = json.loads(message)
    assert hello["type"] == "stream"
    return hello


async def _picture_size(ws, seconds: float = 20) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Width and height of the first keyframe the viewer gets, decoded with PyAV."""
    video: dict | None = None
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                continue
            if message[0] == CONFIG:
                tracks = json.loads(message[1:])["tracks"]
                video = next((t for t in tracks if t["kind"] == "video"), video)
            elif message[0] == FRAME and video is not None:
                track, flags, _, _ = decode_frame_header(message)
                if track != video["track"] or not flags & KEYFRAME:
                    continue
                decoder = av.CodecContext.create("h264", "r")
                decoder.extradata = base64.b64decode(video["description"])
                pictures = [*decoder.decode(av.Packet(message[24:])), *decoder.decode(None)]
                assert pictures, "the keyframe decodes"
                return pictures[0].width, pictures[0].height


async def _until(condition, seconds: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture
async def simulator():
    """cam1 at 640x360 with a sub-stream (Digest credentials); cam2 without one."""
    from opticlink.sim.server import SimulatorServer

    cameras = [camera("cam1", width=MAIN[0], height=MAIN[1], username="admin", password=PASSWORD, substream=True),
               camera("cam2", width=320, height=180, bitrate=300_000, audio=None, backchannel=False)]
    server = SimulatorServer(cameras, port=0)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def served(simulator):
    config = ServiceConfig(cameras=[
        # the credentials are in the main URL only: the sub-stream uses them too
        CameraConfig(id="cam1", url=simulator.url("cam1", credentials=True),
                     substream_url=simulator.url("cam1", sub=True)),
        CameraConfig(id="cam2", url=simulator.url("cam2")),
    ], port=0)
    async with running(config) as (service, base):
        yield service, base, simulator


@pytest.mark.slow
async def test_a_sub_viewer_gets_the_low_resolution_stream_while_a_main_viewer_gets_the_main_one(served):
    service, base, _ = served
    creds = credentials(service)
    async with _connect(_live(base, stream="sub"), creds.cookie_header) as sub, \
            _connect(_live(base), creds.cookie_header) as main:
        assert await _hello(sub) == {"type": "stream", "stream": "sub", "requested": "sub", "substream": True}
        assert (await _hello(main))["stream"] == "main"
        sizes = await asyncio.gather(_picture_size(sub), _picture_size(main))
        assert sizes == [(SUB_WIDTH, SUB_HEIGHT), MAIN]
        async with httpx.AsyncClient(base_url=base, headers=creds.bearer) as http:
            status = (await http.get("/api/cameras/cam1")).json()
            listed = (await http.get("/api/cameras")).json()
        assert status["substream"] is True and [c["substream"] for c in listed] == [True, False]
        assert status["substream_status"]["state"] == "playing"
        assert len(status["substream_status"]["viewers"]) == 1 and len(status["viewers"]) == 1
        assert PASSWORD not in json.dumps(listed)
    runtime = service.cameras["cam1"]
    assert runtime.recorder is None and len(runtime.consumers) == 1  # the sub-stream feeds live viewers only


@pytest.mark.slow
async def test_the_sub_stream_starts_with_its_first_viewer_and_stops_after_the_idle_delay(served, monkeypatch):
    service, base, simulator = served
    monkeypatch.setattr(service_module, "SUBSTREAM_IDLE_S", 1.0)
    creds = credentials(service)
    sub = service.cameras["cam1"].substream
    assert sub is not None
    await service.cameras["cam1"].session.wait_playing(15)  # the main stream plays; the sub-stream does not
    assert not sub.running and simulator.latest_session("cam1/sub") is None
    assert service.cameras["cam1"].status()["substream_status"]["state"] == "idle"

    async with _connect(_live(base, stream="sub"), creds.cookie_header) as ws:
        await _picture_size(ws)
    assert sub.running and sub.starts == 1
    async with _connect(_live(base, stream="sub"), creds.cookie_header) as ws:  # back within the delay
        await _picture_size(ws)
    assert sub.starts == 1, "a viewer back within the idle delay reuses the running sub-stream"
    served_session = simulator.latest_session("cam1/sub")
    assert served_session is not None

    await _until(lambda: not sub.running)
    await _until(lambda: served_session.closed)  # the camera's session was torn down too
    status = service.cameras["cam1"].status()["substream_status"]
    assert status["state"] == "idle" and status["viewers"] == []

    async with _connect(_live(base, stream="sub"), creds.cookie_header) as ws:  # and starts again
        assert await _picture_size(ws) == (SUB_WIDTH, SUB_HEIGHT)
    assert sub.starts == 2


@pytest.mark.slow
async def test_a_camera_without_a_sub_stream_sends_its_main_stream_and_says_so(served):
    service, base, _ = served
    creds = credentials(service)
    async with _connect(_live(base, "cam2", stream="sub"), creds.cookie_header) as ws:
        hello = await _hello(ws)
        assert hello["stream"] == "main" and hello["requested"] == "sub" and hello["substream"] is False
        assert "no sub-stream" in hello["reason"]
        assert await _picture_size(ws) == (320, 180)
    async with _connect(_live(base, "cam2", stream="hd"), creds.cookie_header) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4400


@pytest.mark.slow
async def test_the_sub_stream_refuses_who_the_main_stream_refuses(served):
    service, base, _ = served
    sub = service.cameras["cam1"].substream
    for headers in (None, {"Cookie": "opticlink_session=forged"}):
        async with _connect(_live(base, stream="sub"), headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "log in first")
    assert sub is not None and not sub.running and sub.starts == 0


@pytest.mark.slow
async def test_a_sub_viewer_is_told_who_talks_to_the_camera(served):
    service, base, _ = served
    talker, watcher = credentials(service, "ada"), credentials(service, "bob")
    async with _connect(_live(base), talker.cookie_header) as main, \
            _connect(_live(base, stream="sub"), watcher.cookie_header) as sub:
        await _picture_size(sub)
        await main.send(json.dumps({"type": "talk", "action": "start"}))
        async with asyncio.timeout(15):
            while True:
                message = await sub.recv()
                if isinstance(message, str) and json.loads(message).get("talking") == "ada":
                    break


@pytest.mark.slow
async def test_settings_changed_at_runtime_reach_the_running_sub_stream(served):
    service, base, _ = served
    creds = credentials(service)

    async def audio_in_config(ws, want: bool) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(15):
            while True:
                message = await ws.recv()
                if isinstance(message, bytes) and message[0] == CONFIG:
                    kinds = {t["kind"] for t in json.loads(message[1:])["tracks"]}
                    if ("audio" in kinds) == want:
                        return

    async with _connect(_live(base, stream="sub"), creds.cookie_header) as ws, \
            httpx.AsyncClient(base_url=base, headers=creds.bearer) as http:
        await audio_in_config(ws, True)
        response = await http.patch("/api/cameras/cam1/settings", json={"live_audio": False, "audio_offset_ms": 80})
        assert response.status_code == 200
        await audio_in_config(ws, False)  # the sub-stream's viewers lose the sound too
        sub = service.cameras["cam1"].substream
        assert sub is not None and sub.session is not None and sub.session.audio_offset_ms == 80


def test_the_sub_stream_takes_the_camera_credentials_unless_its_url_has_its_own():
    in_url = CameraConfig(id="a", url="rtsp://admin:p%40ss@10.0.0.1/main", substream_url="rtsp://10.0.0.1/sub")
    client = substream_client(in_url)
    assert client is not None and (client.username, client.password) == ("admin", "p@ss")
    apart = CameraConfig(id="b", url="rtsp://10.0.0.1/main", username="u", password="pw",
                         substream_url="rtsp://10.0.0.1/sub", transport="udp")
    client = substream_client(apart)
    assert client is not None and (client.username, client.password, client.transport) == ("u", "pw", "udp")
    own = CameraConfig(id="c", url="rtsp://10.0.0.1/main", username="u", password="pw",
                       substream_url="rtsp://other:x@10.0.0.1/sub")
    client = substream_client(own)
    assert client is not None and client.username is None  # the client takes the URL's
    assert substream_client(CameraConfig(id="d", url="rtsp://10.0.0.1/main")) is None
