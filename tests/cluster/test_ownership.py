"""The node loop's decisions (`cluster.ownership`), fed times and a catalog in memory: who runs which
camera as nodes join, die and come back."""

from __future__ import annotations

from dataclasses import dataclass, field

from opticlink.cluster.ownership import EXPIRY_MARGIN_S, Holder, Ownership, Peer, fair_share
from opticlink.cluster.workers import RestartPolicy

TTL = 6.0
CAMERAS = [f"cam{i}" for i in range(1, 6)]


@dataclass
class Table:
    """The leases and nodes tables of one catalog, as `store.leases`/`store.nodes` keep them."""

    leases: dict[str, Holder] = field(default_factory=dict)
    nodes: dict[str, Peer] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeCatalog:
    """One node's `ownership.Catalog` over a shared `Table` (times passed in, as the database's clock)."""

    table: Table
    node: str

    def renew_all(self, now: float) -> set[str]:
        kept = {c for c, h in self.table.leases.items() if h.node == self.node and h.expires_at > now}
        for camera in kept:
            self.table.leases[camera] = Holder(self.node, now + TTL)
        return kept

    def beat(self, now: float) -> None:
        self.table.nodes[self.node] = Peer(f"http://{self.node}", now + TTL)

    def nodes(self, now: float) -> dict[str, Peer]:
        return {n: p for n, p in self.table.nodes.items() if p.seen_until > now}

    def owners(self, now: float) -> dict[str, Holder]:
        return {c: h for c, h in self.table.leases.items() if h.expires_at > now}

    def claim(self, camera: str, now: float) -> bool:
        held = self.table.leases.get(camera)
        if held is not None and held.expires_at > now and held.node != self.node:
            return False
        if held is None or held.node != self.node:
            self.table.generation[camera] = self.table.generation.get(camera, 0) + 1
        self.table.leases[camera] = Holder(self.node, now + TTL)
        return True

    def release(self, camera: str) -> None:
        if self.table.leases.get(camera, Holder("", 0)).node == self.node:
            del self.table.leases[camera]


class Node:
    """A node as its loop drives it: steps, starts and stops what it is told, releases after stopping."""

    def __init__(self, table: Table, name: str) -> None:
        self.catalog = FakeCatalog(table, name)
        self.ownership = Ownership(name, TTL)
        self.running: set[str] = set()
        self.stopped: list[str] = []
        self.started_at: dict[str, float] = {}

    def step(self, now: float, cameras: list[str] = CAMERAS) -> None:
        changes = self.ownership.step(self.catalog, cameras, now)
        self.started_at |= {camera: now for camera in changes.start}
        for camera in changes.stop:
            self.running.discard(camera)
            self.stopped.append(camera)
        for camera in changes.release:
            self.catalog.release(camera)
        self.running |= set(changes.start)


def run(nodes: list[Node], start: float, end: float) -> None:
    """Step every node at its own deadline from `start` to `end` (a deterministic event loop)."""
    due = {id(n): start for n in nodes}
    now = start
    while now <= end:
        for node in nodes:
            if due[id(node)] <= now:
                node.step(now)
                due[id(node)] = node.ownership.deadline
        now = min(due.values())


def test_a_node_alone_runs_every_camera_from_its_first_step():
    node = Node(Table(), "a")
    node.step(100.0)
    assert node.running == set(CAMERAS)
    assert node.ownership.deadline == 100.0 + TTL / 3  # renewed every third of the TTL


def test_two_nodes_split_five_cameras_three_and_two_after_the_second_joins():
    table = Table()
    a, b = Node(table, "a"), Node(table, "b")
    a.step(100.0)
    assert len(a.running) == 5
    run([a, b], 101.0, 110.0)
    assert sorted([len(a.running), len(b.running)]) == [2, 3]
    assert a.running.isdisjoint(b.running) and a.running | b.running == set(CAMERAS)
    assert {h.node for h in table.leases.values()} == {"a", "b"}


def test_a_dead_node_s_cameras_are_taken_just_after_its_leases_expire():
    table = Table()
    a, b = Node(table, "a"), Node(table, "b")
    run([a, b], 100.0, 110.0)
    b_cameras = set(b.running)
    expiry = max(h.expires_at for h in table.leases.values() if h.node == "b")  # b dies after its last renewal
    run([a], 110.0, expiry + 1.0)  # a alone steps on, at its own deadlines
    assert a.running == set(CAMERAS)
    taken = [a.started_at[c] for c in b_cameras]
    assert all(expiry <= t <= expiry + EXPIRY_MARGIN_S for t in taken)  # not up to a renewal period later


def test_a_camera_whose_renewal_fails_is_stopped_at_once():
    table = Table()
    a = Node(table, "a")
    a.step(100.0)
    table.leases["cam2"] = Holder("b", 200.0)  # taken by another (a's lease lapsed while it was stalled)
    a.step(101.0)
    assert "cam2" not in a.running and a.stopped == ["cam2"]
    assert table.leases["cam2"].node == "b"


def test_a_restarted_node_with_its_id_reclaims_its_own_leases_in_its_first_step():
    table = Table()
    a, b = Node(table, "a"), Node(table, "b")
    run([a, b], 100.0, 110.0)
    before, generations = set(b.running), dict(table.generation)
    again = Node(table, "b")  # the same id, a new process: its leases are still in force
    again.step(111.0)
    assert again.running == before
    assert table.generation == generations  # reclaimed, not taken over


def test_a_node_back_gets_the_cameras_taken_over_from_it_not_those_the_others_always_ran():
    table = Table()
    a, b = Node(table, "a"), Node(table, "b")
    run([a, b], 100.0, 110.0)
    a_own, b_own = set(a.running), set(b.running)
    expiry = max(h.expires_at for h in table.leases.values() if h.node == "b")
    run([a], 110.0, expiry + 20.0)  # b died: a runs everything
    assert a.running == set(CAMERAS)
    back = Node(table, "b")
    run([a, back], expiry + 20.1, expiry + 30.0)  # b is back (its old leases long gone)
    assert a.running == a_own and back.running == b_own  # a never stopped the cameras it had always run
    assert not set(a.stopped) & a_own


def test_a_camera_removed_from_the_catalog_is_stopped_and_released():
    table = Table()
    a = Node(table, "a")
    a.step(100.0)
    a.step(101.0, cameras=CAMERAS[:4])
    assert a.running == set(CAMERAS[:4]) and "cam5" not in table.leases


def test_the_fair_share_rounds_up_so_every_camera_has_room():
    assert [fair_share(5, n) for n in (1, 2, 3, 5, 6)] == [5, 3, 2, 1, 1]
    assert fair_share(0, 2) == 0 and fair_share(3, 0) == 3


def test_a_worker_that_dies_once_restarts_at_once_and_one_that_keeps_dying_waits_longer():
    policy = RestartPolicy()
    assert policy.delay(0.0, 100.0) == 0.0  # ran a while: at once
    assert policy.delay(100.0, 101.0) == 0.0  # a first quick death: at once
    assert [policy.delay(0.0, 1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.delay(0.0, 60.0) == 0.0 and policy.quick_deaths == 0
