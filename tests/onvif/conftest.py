"""Simulated cameras served as ONVIF devices, with a WS-Discovery responder on an ephemeral loopback port."""

from __future__ import annotations

import pytest

from opticlink.sim.server import SimulatorServer
from tests.conftest import small_camera

USER, PASSWORD = "admin", "pa ss:w@rd"


def onvif_cameras():
    """cam1: open, a 480x270 main stream and a 320x180 sub-stream, G.711 audio and a speaker.
    cam2: user and password, no audio, no speaker, no sub-stream."""
    return [small_camera("cam1", width=480, height=270, substream=True),
            small_camera("cam2", audio=None, backchannel=False, username=USER, password=PASSWORD)]


@pytest.fixture
async def onvif_sim():
    server = SimulatorServer(onvif_cameras(), port=0, onvif=True, discovery_port=0)
    await server.start()
    yield server
    await server.close()
