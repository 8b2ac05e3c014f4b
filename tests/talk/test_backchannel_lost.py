"""A backchannel that dies under a talker is noticed at once: talk goes to `error` with the reason."""

import asyncio

import numpy as np

from opticlink.rtsp.client import ClientConfig
from opticlink.sim.server import SimulatorServer
from opticlink.talk.session import TalkSession
from tests.conftest import small_camera


async def test_backchannel_closed_by_the_camera_ends_talk_with_a_reason():
    server = SimulatorServer([small_camera()], port=0)
    await server.start()
    lost: list[str] = []
    talk = None
    try:
        talk = TalkSession("door", ClientConfig(server.url("cam1")), on_lost=lost.append)
        await talk.start("ada")
        assert talk.state == "talking" and talk.error is None
        assert talk.push("ada", np.zeros(320, np.int16), 16000) >= 0
        await server.close()  # the camera drops every connection (a reboot, a crash)
        for _ in range(100):
            if lost:
                break
            await asyncio.sleep(0.01)
        assert lost, "the dead backchannel went unnoticed"
        assert talk.state == "error" and talk.talker is None and not talk.open
        assert "closed the connection" in talk.error
        assert talk.push("ada", np.zeros(320, np.int16), 16000) == 0  # nothing is sent into nothing
    finally:
        if talk is not None:
            await talk.close()
        await server.close()
