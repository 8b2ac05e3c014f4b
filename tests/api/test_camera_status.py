"""The camera status JSON against a simulated camera: transport, a state per media, errors that clear."""

import asyncio

import httpx
import pytest

from opticlink.api.app import create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from opticlink.sim.faults import Faults
from opticlink.sim.server import _Connection
from tests.auth.helpers import credentials
from tests.conftest import small_camera


def _udp_only():
    spec = small_camera()
    spec.transports = ("udp",)
    return [spec]


async def _status(client, camera="door"):
    response = await client.get(f"/api/cameras/{camera}")
    assert response.status_code == 200
    return response.json()


async def _serve(url, check, *, seconds=8.0, **camera):
    service = Service(ServiceConfig(cameras=[CameraConfig(id="door", url=url, talkback=False, **camera)]))
    await service.start()
    seen = []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://127.0.0.1", headers=credentials(service).bearer) as client:
            for _ in range(int(seconds / 0.05)):
                seen.append(await _status(client))
                if check(seen[-1]):
                    return service, seen
                await asyncio.sleep(0.05)
        raise AssertionError(f"never reached: last status {seen[-1] if seen else None}")
    finally:
        await service.stop()


async def test_status_lists_each_media_with_its_state_and_the_transport(simulator, monkeypatch):
    original = _Connection._describe

    def describe(self, *args, **kwargs):
        response = original(self, *args, **kwargs)
        response.body += b"m=audio 0 RTP/AVP 14\r\na=control:trackID=9\r\na=recvonly\r\n"
        return response

    monkeypatch.setattr(_Connection, "_describe", describe)
    _, seen = await _serve(simulator.url("cam1"), lambda s: s["state"] == "playing" and s["frames"] > 10)
    status = seen[-1]
    assert status["transport"] == "tcp" and status["transport_requested"] == "auto" and status["fallbacks"] == []
    assert [(m["kind"], m["codec"], m["state"], m["track"]) for m in status["media"]] == [
        ("video", "H264/90000", "playing", 0), ("audio", "PCMU/8000", "playing", 1),
        ("audio", "MPA/90000", "unsupported codec MPA", None)]
    assert status["error"] is None and status["datagrams_dropped"] == 0


@pytest.mark.parametrize("simulator", [_udp_only()], indirect=True)
async def test_status_says_a_camera_refusing_tcp_plays_over_udp(simulator):
    _, seen = await _serve(simulator.url("cam1"), lambda s: s["state"] == "playing")
    assert seen[-1]["transport"] == "udp" and "461" in seen[-1]["fallbacks"][0]


@pytest.mark.parametrize("simulator", [[small_camera(faults=Faults(drop_at_s=1.0))]], indirect=True)
async def test_the_error_clears_once_the_camera_plays_again(simulator):
    service, seen = await _serve(simulator.url("cam1"), lambda s: s["connects"] >= 2 and s["state"] == "playing")
    assert any(s["state"] != "playing" and "closed the connection" in (s["error"] or "") for s in seen)
    assert seen[-1]["error"] is None
    assert all(s["error"] is None for s in seen if s["state"] == "playing")
    assert service.cameras["door"].session.last_error is None
