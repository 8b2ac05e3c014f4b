"""A node on a shared catalog: its identity, and the loop that keeps its cameras (`ownership`) in step.

`NodeLoop` is the asyncio adapter of `Ownership`: it runs each step's database calls in a thread (a
busy SQLite or a slow PostgreSQL never stalls the frames), then has the service start and stop the
cameras the step decided, at the step's deadline (or at once when `wake()` is called: a camera added).
The first step runs before the service starts any camera (`first_step`), so a node alone starts them
all with no added latency. If the catalog cannot be reached for a TTL, the node stops its cameras:
their leases may have expired and another node taken them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from opticlink.cluster.ownership import Changes, Holder, Ownership, Peer
from opticlink.store import Database
from opticlink.store.leases import DEFAULT_TTL, Leases
from opticlink.store.nodes import Nodes, node_secret

log = logging.getLogger(__name__)
FORGET_NODES_S = 7 * 86400.0  # rows of nodes dead this long are deleted


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is among those sharing the catalog: `id` (config `node:`, else `host:port`, and
    `/N` for worker N) and the internal `address` the others forward a camera's streams to."""

    id: str
    address: str
    ttl: float = DEFAULT_TTL


def default_node_id(port: int, worker: int | None = None) -> str:
    """This machine's name and the service's port (and the worker's index): stable across restarts, so a
    restarted worker finds its own leases."""
    base = f"{socket.gethostname()[:40]}:{port}"
    return base if worker is None else f"{base}/{worker}"


class DatabaseCatalog:
    """`ownership.Catalog` over the service's database (leases and nodes tables)."""

    def __init__(self, database: Database, identity: NodeIdentity) -> None:
        self.database = database
        self.identity = identity
        self.leases = Leases(database, identity.id, identity.ttl)
        self.table = Nodes(database)
        self.started = database.clock()

    def now(self) -> float:
        return self.database.clock()

    def renew_all(self, now: float) -> set[str]:
        return self.leases.renew_all(now=now)

    def beat(self, now: float) -> None:
        self.table.beat(self.identity.id, self.identity.address, ttl=self.identity.ttl, now=now, started=self.started)

    def nodes(self, now: float) -> Mapping[str, Peer]:
        return {n.id: Peer(n.address, n.seen_until) for n in self.table.live(now=now).values()}

    def owners(self, now: float) -> Mapping[str, Holder]:
        return {c: Holder(lease.node, lease.expires_at) for c, lease in self.leases.owners(now=now).items()}

    def claim(self, camera: str, now: float) -> bool:
        return self.leases.claim(camera, now=now) is not None

    def release(self, camera: str) -> None:
        self.leases.release(camera)

    def leave(self) -> None:
        self.leases.release_all()
        self.table.leave(self.identity.id)


Apply = Callable[[Changes], Awaitable[None]]


class NodeLoop:
    """Runs `Ownership` against the catalog for a service (see the module's docstring). `cameras()`
    gives every enabled camera's id; `apply` starts and stops them; `refresh`, awaited before each step,
    brings the camera list up to date."""

    def __init__(self, database: Database, identity: NodeIdentity, cameras: Callable[[], Collection[str]],
                 apply: Apply, refresh: Callable[[], Awaitable[None]] | None = None) -> None:
        self.identity = identity
        self.catalog = DatabaseCatalog(database, identity)
        self.ownership = Ownership(identity.id, identity.ttl)
        self.secret = node_secret(database)
        self.cameras = cameras
        self.apply = apply
        self.refresh = refresh  # before each step: catch up with cameras changed through another node
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_ok = time.monotonic()
        # `stop` cancels the loop, not a step already running in its thread: it may claim and renew after
        # `leave` released everything, leaving this node's leases to expire. One at a time, and none after.
        self._catalog_lock = threading.Lock()
        self._left = False

    @property
    def id(self) -> str:
        return self.identity.id

    def owner(self, camera: str) -> tuple[str, str] | None:
        """(node, address) of `camera`'s owner as last seen (within a third of the TTL)."""
        return self.ownership.view.owner_address(camera)

    def first_step(self) -> Changes:
        """The start's step, synchronously: the cameras to start with (before any starts)."""
        self.catalog.table.forget_dead(before=self.catalog.now() - FORGET_NODES_S)
        changes = self.ownership.step(self.catalog, self.cameras(), self.catalog.now())
        self._last_ok = time.monotonic()
        log.info("node %s at %s: runs %d of %d cameras (%d nodes live)", self.id, self.identity.address,
                 len(self.ownership.running), len(self.cameras()), len(self.ownership.view.nodes))
        return changes

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"node-{self.id}")

    async def forget(self, camera: str) -> None:
        """The service stopped `camera` itself (its configuration changed): give its lease up, so the
        next step claims it afresh and starts it with its new configuration."""
        if camera in self.ownership.running:
            self.ownership.running.discard(camera)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.catalog.release, camera)

    def wake(self) -> None:
        """Step now (a camera was added or removed)."""
        self._wake.set()

    def _step(self, cameras: Collection[str]) -> tuple[Changes, float]:
        """A step, and how long until the next one (seconds); none once the node has left."""
        with self._catalog_lock:
            if self._left:
                return Changes(), self.identity.ttl
            now = self.catalog.now()
            changes = self.ownership.step(self.catalog, cameras, now)
            return changes, self.ownership.deadline - now

    async def _run(self) -> None:
        wait = self.identity.ttl / 3
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(wait, self.identity.ttl / 3))):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self.refresh is not None:
                    await self.refresh()
                changes, wait = await asyncio.to_thread(self._step, list(self.cameras()))
                self._last_ok = time.monotonic()
            except Exception as exc:
                log.warning("node %s: the catalog did not answer (%s)", self.id, type(exc).__name__)
                if time.monotonic() - self._last_ok > self.identity.ttl * 2 / 3 and self.ownership.running:
                    log.warning("node %s: leases not renewed for %.0f s: stopping its cameras", self.id,
                                time.monotonic() - self._last_ok)
                    await self.apply(Changes(stop=self.ownership.drop_all()))
                await asyncio.sleep(0.5)
                continue
            if changes.start or changes.stop:
                log.info("node %s: starts %s, stops %s", self.id, changes.start or "-", changes.stop or "-")
            await self.apply(changes)
            for camera in changes.release:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.catalog.release, camera)

    async def stop(self) -> None:
        """Stop stepping (the service stops its cameras itself, then calls `leave`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def leave(self) -> None:
        """Release every lease and drop this node's row: the others take its cameras at once."""
        try:
            await asyncio.to_thread(self._leave)
            log.info("node %s left the catalog: its cameras are free", self.id)
        except Exception as exc:
            log.warning("node %s: could not release its leases (%s): they expire in %.0f s", self.id,
                        type(exc).__name__, self.identity.ttl)

    def _leave(self) -> None:
        with self._catalog_lock:  # after a step running in its thread, and before any other
            self._left = True
            self.catalog.leave()
