"""Two machines' worth of nodes on one PostgreSQL catalog: two `opticlink serve` processes (each its
own port and data directory: recordings stay on the owner's disk) share the cameras by leases; either
lists and plays every camera; one killed with -9 loses its cameras to the other within 10 s."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import pytest

from opticlink.auth.gate import Gate
from opticlink.sim.server import SimulatorServer
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from tests.auth.helpers import credentials
from tests.cluster.helpers import frames, listing, owners, serve, until, write_config
from tests.conftest import small_camera
from tests.store.backends import Cluster

CAMERAS = ["cam1", "cam2", "cam3", "cam4"]


@pytest.mark.peer
async def test_two_nodes_on_postgresql_split_the_cameras_and_one_killed_loses_them_within_10_s(
        tmp_path, postgres_cluster: Cluster):
    name, url = postgres_cluster.create_database()
    database = Database.open_url(url)
    try:
        creds = credentials(Gate(database))
        async with SimulatorServer([small_camera(c) for c in CAMERAS], port=0) as sim, \
                contextlib.AsyncExitStack() as stack:
            nodes = []
            for node in ("a", "b"):
                (tmp_path / node).mkdir()
                config = write_config(tmp_path / node / "cameras.yaml", {c: sim.url(c) for c in CAMERAS},
                                      f"data_dir: {tmp_path / node}", f"database: {url}", f"node: node-{node}",
                                      "segment_seconds: 2")
                nodes.append(await stack.enter_async_context(serve(config, "--workers", "1")))
            held = await until(lambda: (o := owners(database)) and len(o) == 4 and len(set(o.values())) == 2
                               and o, 30, "both nodes holding cameras")
            assert set(held.values()) == {"node-a", "node-b"}

            for _, base in nodes:  # either node's page lists and plays every camera
                listed = await until(lambda base=base: _all_playing(base, creds), 20, "every camera playing")
                assert [e["id"] for e in listed] == CAMERAS and {e["node"] for e in listed} == {"node-a", "node-b"}
                for camera in CAMERAS:
                    await frames(base, camera, creds, within=10)
                    recorded = time.time() - 5  # its recording too, from the owner's disk
                    await frames(base, camera, creds, within=10, path=f"playback?start={recorded:.3f}")

            (victim, _), (survivor, base) = nodes if held["cam1"] == "node-a" else nodes[::-1]
            lost = sorted(c for c, node in held.items() if node == held["cam1"])
            victim.send_signal(signal.SIGKILL)
            killed = time.time()
            back = await asyncio.gather(*(frames(base, camera, creds, within=15) for camera in lost))
            assert max(back) < 10.0, dict(zip(lost, back, strict=True))
            assert set(owners(database).values()) == {"node-a" if held["cam1"] == "node-b" else "node-b"}

            recordings = Recordings(database)

            def resumed() -> bool:  # recorded again by the survivor, the time without an owner indexed as a gap
                return all(any(s.start_wall > killed for s in recordings.segments(c, killed - 60, killed + 60))
                           and any(g.start_wall <= killed and g.end_wall is not None and g.end_wall > killed
                                   for g in recordings.gaps(c, killed - 60, killed + 60)) for c in lost)

            await until(resumed, 10, "recording resumed with the gap indexed")
            survivor.terminate()
            assert await asyncio.wait_for(survivor.wait(), 30) == 0
        assert owners(database) == {}
    finally:
        database.close()
        postgres_cluster.drop_database(name)


async def _all_playing(base, creds):  # type: ignore[no-untyped-def]
    listed = await listing(base, creds)
    return listed if all(e.get("state") == "playing" and e.get("node") for e in listed) else None
