"""A node that leaves keeps no lease, even with a step still running in its thread when it stops."""

from __future__ import annotations

import asyncio
import threading

from opticlink.cluster.node import NodeIdentity, NodeLoop
from opticlink.cluster.ownership import Changes
from opticlink.store import Database
from tests.cluster.helpers import owners


async def test_a_step_running_when_the_node_stops_claims_nothing_after_it_left(tmp_path):
    # Seen in `test_workers` on a loaded machine: a clean stop left a worker's four leases behind. The
    # step in its thread was held (a slow database) while `stop` cancelled the loop and `leave` released
    # everything; the step then claimed the cameras again.
    database = Database.open(tmp_path)
    cameras = ["cam1", "cam2"]
    started: list[str] = []

    async def apply(changes: Changes) -> None:
        started.extend(changes.start)

    loop = NodeLoop(database, NodeIdentity("n1", "http://127.0.0.1:9"), lambda: cameras, apply)
    stepping, go_on = threading.Event(), threading.Event()
    step = loop.ownership.step

    def slow_step(*args, **kwargs):
        stepping.set()
        go_on.wait(10)
        return step(*args, **kwargs)

    loop.ownership.step = slow_step  # type: ignore[method-assign]
    loop.start()
    assert await asyncio.to_thread(stepping.wait, 10)
    await loop.stop()  # cancels the loop: the step goes on in its thread
    leaving = asyncio.ensure_future(loop.leave())
    await asyncio.sleep(0.2)
    go_on.set()  # the step claims the cameras now
    await leaving
    await asyncio.sleep(0.2)
    try:
        assert owners(database) == {}
    finally:
        database.close()
