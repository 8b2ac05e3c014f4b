"""Two nodes in one process on one SQLite catalog: cameras split at start, and a camera added or removed
through one node's API is run or dropped by the whole cluster."""

from __future__ import annotations

import contextlib

import pytest

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from tests.cluster.helpers import owners, until

DEAD_URL = "rtsp://127.0.0.1:9/none"  # nothing answers: the sessions retry, which is all these tests need


def _config(tmp_path, *cameras: str) -> ServiceConfig:
    return ServiceConfig(cameras=[CameraConfig(id=c, url=DEAD_URL) for c in cameras], data_dir=tmp_path,
                         database="file", port=0)


@pytest.mark.slow
async def test_two_nodes_split_the_cameras_and_follow_cameras_added_and_removed_through_either(tmp_path):
    async with contextlib.AsyncExitStack() as stack:
        a, _ = await stack.enter_async_context(running(_config(tmp_path, "door", "gate"), node="a"))
        b, _ = await stack.enter_async_context(running(_config(tmp_path, "door", "gate"), node="b"))
        await until(lambda: len(a.cameras) == 1 and len(b.cameras) == 1, 10, "one camera each")
        assert set(a.cameras) | set(b.cameras) == {"door", "gate"}
        assert set(a.elsewhere) == set(b.cameras) and set(b.elsewhere) == set(a.cameras)

        await a.add_camera(CameraConfig(id="yard", url=DEAD_URL))
        await until(lambda: b.camera_config("yard") is not None, 10, "node b knowing the camera added on a")
        held = await until(lambda: (o := owners(a.database)).get("yard") and o, 10, "the new camera claimed")
        runner = a if held["yard"] == "a" else b
        assert "yard" in runner.cameras

        other = b if runner is a else a
        await other.remove_camera("yard")  # removed through the node that does not run it
        await until(lambda: "yard" not in runner.cameras and runner.camera_config("yard") is None, 10,
                    "the camera stopped on the node that ran it")
        await until(lambda: "yard" not in owners(a.database), 10, "its lease released")
