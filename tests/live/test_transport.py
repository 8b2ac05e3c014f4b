"""The live WebSocket as a browser meets it."""

import asyncio

import pytest
import websockets

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer
from tests.auth.helpers import credentials


async def test_media_is_not_deflated_even_when_the_browser_offers_it():
    spec = camera("cam1", width=160, height=96, bitrate=100_000)
    async with SimulatorServer([spec], port=0) as sim:
        config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=sim.url("cam1"))], port=0)
        async with running(config) as (service, base):
            url = base.replace("http", "ws") + "/api/cameras/cam1/live"
            async with websockets.connect(url, compression="deflate", max_queue=None, max_size=None,
                                          additional_headers=credentials(service).bearer) as ws:
                assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
                assert await asyncio.wait_for(ws.recv(), 10)


@pytest.mark.slow
async def test_a_viewer_that_stops_reading_is_disconnected_and_viewers_are_capped(monkeypatch):
    import base64
    import os
    import socket

    from opticlink.live import websocket as live

    monkeypatch.setattr(live, "SEND_STALL_S", 1.5)
    monkeypatch.setattr(live, "MAX_VIEWERS_PER_CAMERA", 2)
    spec = camera("cam1", width=640, height=360, bitrate=4_000_000)  # noisy: it does not compress away
    async with SimulatorServer([spec], port=0) as sim:
        config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=sim.url("cam1"))], port=0)
        async with running(config) as (service, base):
            url = base.replace("http", "ws") + "/api/cameras/cam1/live"
            token = credentials(service).token
            headers = {"Authorization": f"Bearer {token}"}
            host, port = base.split("//")[1].split(":")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            _, writer = await asyncio.open_connection(sock=sock)  # a client that never reads a byte
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(f"GET /api/cameras/cam1/live HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         f"Authorization: Bearer {token}\r\n\r\n".encode())
            async with websockets.connect(url, max_queue=None, max_size=None, additional_headers=headers) as reader:
                hub = service.cameras["cam1"].live
                for _ in range(50):
                    if len(hub.viewers) == 2:
                        break
                    await asyncio.sleep(0.1)
                with pytest.raises(websockets.ConnectionClosed) as refused:
                    async with websockets.connect(url, additional_headers=headers) as third:
                        await asyncio.wait_for(third.recv(), 5)
                assert refused.value.rcvd.code == 4429  # a third viewer: refused
                for _ in range(150):  # the one not reading goes within its buffers and the stall time
                    if len(hub.viewers) == 1:
                        break
                    await asyncio.sleep(0.1)
                assert len(hub.viewers) == 1
                assert await asyncio.wait_for(reader.recv(), 5)  # the one reading stays
            writer.close()
