"""The hop from one node to another (`cluster.proxy`): signed with the catalog's node key, refused
without it, never an open door around the login."""

from __future__ import annotations

import json

import pytest
import websockets

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.api.service import Service
from opticlink.cluster.node import NodeIdentity
from opticlink.cluster.proxy import HOP, HOP_WINDOW_S, camera_of, sign, verify
from tests.auth.helpers import asgi_client, credentials

KEY = "k" * 43


def test_a_signature_verifies_only_with_the_key_for_the_same_user_method_path_and_time():
    value = sign(KEY, 7, "GET", "/api/cameras/door/live", now=1000.0)
    assert verify(KEY, value, "GET", "/api/cameras/door/live", now=1000.0) == 7
    assert verify("another key", value, "GET", "/api/cameras/door/live", now=1000.0) is None
    assert verify(KEY, value, "GET", "/api/cameras/gate/live", now=1000.0) is None
    assert verify(KEY, value, "DELETE", "/api/cameras/door/live", now=1000.0) is None
    assert verify(KEY, value.replace(".7.", ".1.", 1), "GET", "/api/cameras/door/live", now=1000.0) is None
    assert verify(KEY, value, "GET", "/api/cameras/door/live", now=1000.0 + HOP_WINDOW_S + 1) is None
    assert verify(None, value, "GET", "/api/cameras/door/live", now=1000.0) is None
    assert verify(KEY, "garbage", "GET", "/", now=1000.0) is None


def test_only_paths_of_one_camera_are_routed_to_its_owner():
    assert camera_of("/api/cameras/door") == "door"
    assert camera_of("/api/cameras/door/live") == "door"
    assert camera_of("/api/cameras/front%20door/playback") == "front door"
    assert [camera_of(p) for p in ("/api/cameras", "/api/cameras/", "/api/cameras/probe", "/api/me",
                                   "/cameras/door/diagnostics")] == [None] * 5


@pytest.fixture
def node(tmp_path) -> Service:
    config = ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")], data_dir=tmp_path,
                           database="file")
    return Service(config, node=NodeIdentity("n1", "http://127.0.0.1:9"))



async def test_a_hop_signed_with_the_catalog_s_key_acts_for_the_user_it_names(node):
    assert node.node is not None
    creds = credentials(node, "ada", role="viewer")
    user = node.database.user("ada")
    assert user is not None
    async with asgi_client(node) as client:
        answer = await client.get("/api/me", headers={HOP: sign(node.node.secret, user.id, "GET", "/api/me")})
    assert answer.status_code == 200 and answer.json()["name"] == "ada" and answer.json()["role"] == "viewer"
    assert creds.name == "ada"


async def test_a_hop_without_the_key_is_refused_even_with_a_valid_login(node):
    creds = credentials(node, "ada", role="admin")
    user = node.database.user("ada")
    assert user is not None
    forged = sign("a guessed key", user.id, "GET", "/api/me")
    async with asgi_client(node) as client:
        assert (await client.get("/api/me", headers=creds.bearer)).status_code == 200
        refused = await client.get("/api/me", headers={HOP: forged, **creds.bearer})
        assert refused.status_code == 401
        assert (await client.get("/api/me", headers={HOP: "1.1.x"})).status_code == 401
        replayed = sign(node.node.secret, user.id, "GET", "/api/me")  # signed for another path
        assert (await client.get("/api/audit", headers={HOP: replayed})).status_code == 401


async def test_a_node_alone_takes_no_hop_at_all(tmp_path):
    alone = Service(ServiceConfig(cameras=[], data_dir=tmp_path, database="file"))
    credentials(alone, "ada")
    user = alone.database.user("ada")
    assert user is not None and alone.node is None
    async with asgi_client(alone) as client:
        answer = await client.get("/api/me", headers={HOP: sign("whatever", user.id, "GET", "/api/me")})
    assert answer.status_code == 401


async def test_a_live_websocket_hop_without_the_key_is_closed_4401(tmp_path):
    config = ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://127.0.0.1:9/none")], data_dir=tmp_path,
                           database="file", port=0)
    async with running(config, node="n1") as (service, url):
        creds = credentials(service, "ada", role="admin")
        user = service.database.user("ada")
        assert user is not None and service.node is not None
        live = f"ws{url[4:]}/api/cameras/door/live"
        forged = sign("a guessed key", user.id, "GET", "/api/cameras/door/live")
        async with websockets.connect(live, additional_headers={HOP: forged, **creds.bearer}) as refused:
            with pytest.raises(websockets.ConnectionClosed):
                await refused.recv()
        assert refused.close_code == 4401
        signed = sign(service.node.secret, user.id, "GET", "/api/cameras/door/live")
        async with websockets.connect(live, additional_headers={HOP: signed}) as served:
            hello = json.loads(await served.recv())
        assert hello["type"] == "stream"


async def test_a_signed_hop_may_name_the_owner_by_a_host_a_browser_could_not_use(node):
    credentials(node, "ada")
    user = node.database.user("ada")
    assert user is not None and node.node is not None
    other = {"host": "node-b.internal:41234"}  # this machine's name: the address other nodes reach it by
    async with asgi_client(node) as client:
        hop = {HOP: sign(node.node.secret, user.id, "GET", "/api/me"), **other}
        assert (await client.get("/api/me", headers=hop)).status_code == 200
        assert (await client.get("/api/me", headers=other)).status_code == 421  # a browser naming it: refused
