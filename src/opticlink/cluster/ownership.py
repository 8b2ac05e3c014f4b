"""Which cameras this node runs: the node loop's decisions, sans-IO.

`Ownership.step(catalog, cameras, now)` is one turn of a node's loop, given the time and the catalog
(leases and nodes, `Catalog`): renew the leases of the cameras it runs (one statement) and stop at
once those it lost (another node may already run them), heartbeat, then take its fair share,
`ceil(cameras / live nodes)`: claim free cameras (never claimed, released, or expired with a dead
node) while under it, give up the surplus when over it (a node joined: the cameras it took last go
first, so a node back from the dead gets its own). A camera whose lease is already this node's (a
restarted worker keeping its node id) is claimed first, at once. The answer says what to start and
what to stop (and, after stopping, to release); `deadline` says when to step again: a third of the
TTL, or just after the next lease or node of another node expires, so a dead
node's cameras are taken as soon as they are free, not up to a renewal period later.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

EXPIRY_MARGIN_S = 0.05  # step this long after a lease expires, so the database agrees it has


@dataclass(frozen=True, slots=True)
class Holder:
    """A lease in force: who holds the camera, until when (database clock, Unix seconds)."""

    node: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Peer:
    """A live node: where it is reached, until when it counts as alive."""

    address: str
    seen_until: float


class Catalog(Protocol):
    """What a step reads and writes: `store.leases` and `store.nodes` (or a fake, in tests)."""

    def renew_all(self, now: float) -> set[str]: ...

    def beat(self, now: float) -> None: ...

    def nodes(self, now: float) -> Mapping[str, Peer]: ...

    def owners(self, now: float) -> Mapping[str, Holder]: ...

    def claim(self, camera: str, now: float) -> bool: ...


@dataclass(slots=True)
class Changes:
    """What the node must do after a step: start `start`; stop `stop` (lost: another node may run them
    already), then release `release` (given up: stopped first, so two nodes never record one camera)."""

    start: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class View:
    """The catalog as the last step read it: who owns what, and where each live node is."""

    owners: Mapping[str, Holder]
    nodes: Mapping[str, Peer]

    def owner_address(self, camera: str) -> tuple[str, str] | None:
        """(node, address) of the node that owns `camera`, None when nobody does (or it is not live)."""
        holder = self.owners.get(camera)
        peer = self.nodes.get(holder.node) if holder is not None else None
        return None if holder is None or peer is None else (holder.node, peer.address)


def fair_share(cameras: int, nodes: int) -> int:
    """How many cameras a node runs at most: an even split, rounded up (so every camera has room)."""
    return math.ceil(cameras / max(1, nodes))


class Ownership:
    """One node's cameras, kept in step with the catalog (see the module's docstring)."""

    def __init__(self, node: str, ttl: float) -> None:
        self.node = node
        self.ttl = ttl
        self.running: set[str] = set()  # cameras this node runs: its leases, as far as it knows
        self.taken: dict[str, float] = {}  # when each was claimed: the surplus given up is the newest
        self.view = View({}, {})
        self.deadline = 0.0  # when to step next (the catalog's clock)

    def step(self, catalog: Catalog, cameras: Collection[str], now: float) -> Changes:
        changes = Changes()
        if self.running:
            kept = catalog.renew_all(now)
            lost = sorted(self.running - kept)
            changes.stop += lost
            self.running -= set(lost)
            for camera in lost:
                self.taken.pop(camera, None)
        catalog.beat(now)
        nodes = dict(catalog.nodes(now))
        owners = dict(catalog.owners(now))
        wanted = set(cameras)
        gone = sorted(self.running - wanted)  # removed from the catalog
        share = fair_share(len(wanted), len(nodes | {self.node: Peer("", now)}))
        # the cameras held longest stay: a dead node's cameras go back when it returns, not the others'
        mine = sorted(self.running & wanted, key=lambda c: (self.taken.get(c, 0.0), c))
        surplus = mine[share:] if len(nodes) > 1 else []
        for camera in [*gone, *surplus]:
            changes.stop.append(camera)
            changes.release.append(camera)
            self.running.discard(camera)
            self.taken.pop(camera, None)
            owners.pop(camera, None)
        ours_already = sorted(c for c in wanted - self.running if owners.get(c, Holder("", 0)).node == self.node)
        free = sorted(c for c in wanted if c not in owners)
        room = share - len(self.running)
        for camera in ours_already + free:
            if room <= 0:
                break
            if catalog.claim(camera, now):
                changes.start.append(camera)
                self.running.add(camera)
                self.taken[camera] = now
                owners[camera] = Holder(self.node, now + self.ttl)
                room -= 1
        for camera in ours_already:  # beyond the share: another node takes it when it expires
            if camera not in self.running:
                owners.pop(camera, None)
        self.view = View(owners, nodes)
        others = [h.expires_at for c, h in owners.items() if h.node != self.node and c in wanted]
        others += [p.seen_until for n, p in nodes.items() if n != self.node]
        self.deadline = min([now + self.ttl / 3, *(t + EXPIRY_MARGIN_S for t in others if t > now)])
        return changes

    def drop_all(self) -> list[str]:
        """The catalog could not be reached for too long: the leases may be gone; stop everything."""
        lost, self.running = sorted(self.running), set()
        self.taken.clear()
        return lost
