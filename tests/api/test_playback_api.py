"""The timeline route and the playback WebSocket's access, control checks and audit (no media here:
tests/record/test_playback_browser.py plays a real recording)."""

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from tests.auth.helpers import credentials

T = 1_700_000_000.0


@pytest.fixture
async def unreachable():
    config = ServiceConfig(cameras=[CameraConfig(id="cam1", url="rtsp://127.0.0.1:9/none")], port=0)
    async with running(config) as (service, base):
        yield service, base


def _playback(base: str, query: str = "") -> str:
    return base.replace("http", "ws", 1) + "/api/cameras/cam1/playback" + query


async def _texts(ws, count: int) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    while len(out) < count:
        message = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(message, str):
            out.append(json.loads(message))
    return out


async def test_the_timeline_merges_segments_and_gives_gaps_and_who_talked(unreachable):
    service, base = unreachable
    rec = service.recordings
    for run, start, end in ((1, T, T + 60), (1, T + 60, T + 120), (2, T + 130, T + 190)):
        segment = rec.add_segment("cam1", run, f"cam1/{start}.mov", start_wall=start, media_start_us=0,
                                  wall_source="server", video_codec="h264", audio_codec="pcmu")
        rec.update_segment(segment, end_wall=end, media_end_us=int((end - start) * 1e6), bytes=1, frames=1,
                           keyframes=[0], done=True)
    gap = rec.open_gap("cam1", T + 120, "camera offline", "connection refused")
    rec.close_gap(gap, T + 130)
    db = service.database
    db.add_audit(T + 10, "talk_start", user="ada", camera="cam1")
    db.add_audit(T + 14, "talk_stop", user="ada", camera="cam1")
    db.add_audit(T + 140, "talk_start", user="bob", camera="cam1")
    db.add_audit(T + 141, "watch_start", user="bob", camera="cam1")
    db.add_audit(T + 150, "talk_start", user="cy", camera="cam2")
    creds = credentials(service, "vic", role="viewer")
    async with httpx.AsyncClient(base_url=base, headers=creds.bearer) as client:
        answer = (await client.get("/api/cameras/cam1/timeline", params={"start": T - 10, "end": T + 200})).json()
        refused = [(await client.get("/api/cameras/cam1/timeline", params=params)).status_code for params in (
            {"start": T, "end": T - 1}, {"start": T, "end": T + 40 * 86400}, {"start": "x", "end": T})]
        missing = (await client.get("/api/cameras/nope/timeline", params={"start": T, "end": T + 1})).status_code
    assert answer["segments"] == [[T, T + 120], [T + 130, T + 190]]
    assert answer["gaps"] == [{"start": T + 120, "end": T + 130, "cause": "camera offline",
                               "detail": "connection refused"}]
    assert answer["talk"] == [{"start": T + 10, "end": T + 14, "user": "ada"},
                              {"start": T + 140, "end": T + 200, "user": "bob"}]  # still talking at the end
    assert refused == [422, 422, 422] and missing == 404


async def test_the_playback_socket_is_guarded_as_the_live_one(unreachable):
    service, base = unreachable
    creds = credentials(service)
    for headers, origin, code in ((None, None, 4401), (creds.cookie_header, "http://evil.example", 4403)):
        async with websockets.connect(_playback(base), additional_headers=headers, origin=origin) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd.code == code
    for query in ("?start=abc", "?start=1e300", f"?start={T}&speed=3"):
        async with websockets.connect(_playback(base, query), additional_headers=creds.bearer) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd.code == 4400


async def test_nothing_recorded_ends_at_once_and_hostile_controls_are_refused(unreachable):
    service, base = unreachable
    creds = credentials(service, "vic", role="viewer")
    async with websockets.connect(_playback(base, f"?start={T}"), additional_headers=creds.bearer) as ws:
        first = await _texts(ws, 3)
        assert first[0]["type"] == "reset"
        assert first[-1] == {"type": "playback", "state": "ended", "speed": 1.0,
                             "reason": "nothing recorded at or after this time"}
        for bad in ("x" * 2000, "[[[[" * 300, "{}", '{"action": "seek", "wall": "soon"}',
                    '{"action": "seek", "wall": 1e300}', '{"action": "speed", "value": 3}',
                    '{"action": "speed", "value": true}', '{"action": "rm -rf"}'):
            await ws.send(bad)
            (answer,) = await _texts(ws, 1)
            assert answer["type"] == "error" and answer["reason"], bad
        await ws.send(b"\x02binary")
        assert (await _texts(ws, 1))[0]["reason"] == "this socket takes JSON text control messages only"
        await ws.send(json.dumps({"action": "speed", "value": 2}))
        assert (await _texts(ws, 1))[0] == {"type": "playback", "state": "ended", "speed": 2.0, "reason": None}
    await asyncio.sleep(0.2)
    actions = [(row.action, row.user, row.camera) for row in service.database.audit(10)]
    assert ("playback_start", "vic", "cam1") in actions and ("playback_stop", "vic", "cam1") in actions
