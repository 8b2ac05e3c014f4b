"""The live WebSocket as a browser meets it."""

import asyncio

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
