"""A camera that comes back plays again within 2 s: capped, jittered backoff reset by PLAY; connect timeout."""

import asyncio
import socket

import pytest

from opticlink.camera.session import CameraSession
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.server import SimulatorServer
from tests.conftest import small_camera

RETURN_BUDGET_S = 2.0


@pytest.mark.slow
async def test_camera_plays_again_within_two_seconds_of_coming_back(monkeypatch):
    import random

    import opticlink.camera.session as module

    drawn: list[float] = []  # the backoff each wait was drawn under (its upper bound)
    real = random.Random()
    monkeypatch.setattr(module.random, "uniform", lambda a, b: (drawn.append(b), real.uniform(a, b))[1])
    server = SimulatorServer([small_camera()], port=0)
    await server.start()
    port = server.port
    units = []
    session = CameraSession(ClientConfig(server.url("cam1")), name="door",
                            on_unit=lambda track, unit: units.append(unit))
    task = asyncio.get_running_loop().create_task(session.run())
    try:
        await session.wait_playing(5)
        await server.close()  # the camera goes away (a reboot) ...
        await asyncio.sleep(4.0)  # ... long enough for the backoff to reach its cap
        assert session.state in ("retrying", "connecting") and session.last_error is not None
        server = SimulatorServer([small_camera()], port=port)
        await server.start()  # ... and comes back
        loop = asyncio.get_running_loop()
        back = loop.time()
        await session.wait_playing(5)
        count = len(units)
        while len(units) == count:
            await asyncio.sleep(0.01)
        took = loop.time() - back
        print(f"RECONNECT: media again {took:.2f} s after the camera came back")
        assert took <= RETURN_BUDGET_S
        assert session.last_error is None and session.connects == 2
        assert max(drawn) == CameraSession.BACKOFF_MAX
        drawn.clear()
        await server.close()  # gone again: the successful PLAY reset the backoff
        while not drawn:
            await asyncio.sleep(0.01)
        assert drawn[0] == CameraSession.BACKOFF_MIN
    finally:
        await session.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.close()


async def test_backoff_doubles_to_its_cap_jittered(monkeypatch):
    import opticlink.camera.session as module

    with socket.socket() as sock:  # a port nothing listens on: every attempt is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    drawn: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        drawn.append((a, b))
        return a / 10  # waits ten times shorter than the policy's floor: a fast test

    monkeypatch.setattr(module.random, "uniform", uniform)
    session = CameraSession(ClientConfig(f"rtsp://127.0.0.1:{port}/x"), name="gone")
    task = asyncio.get_running_loop().create_task(session.run())
    try:
        while len(drawn) < 6:
            await asyncio.sleep(0.01)
    finally:
        await session.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    backoffs = [b for _, b in drawn[:6]]  # the bounds drawn from are [backoff * (1 - jitter), backoff]
    assert backoffs == [0.5, 1.0, 1.5, 1.5, 1.5, 1.5]
    assert all(a == b * (1 - CameraSession.BACKOFF_JITTER) for a, b in drawn)
    assert "cannot reach" in str(session.last_error)
