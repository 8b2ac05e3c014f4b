"""Camera leases on both backends: claim, renew, release, expiry takeover with its fencing generation,
the list of owners, and two nodes claiming at the same instant (exactly one wins)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from opticlink.store.leases import Lease, Leases

T = 1_700_000_000.0


def test_a_free_camera_is_claimed_and_a_held_one_is_not(database):
    a, b = Leases(database, "node-a", ttl=10), Leases(database, "node-b", ttl=10)
    lease = a.claim("door", now=T)
    assert lease == Lease("door", "node-a", 1, T, T + 10)
    assert b.claim("door", now=T + 9.9) is None
    again = a.claim("door", now=T + 5)  # the holder claiming again renews
    assert again == Lease("door", "node-a", 1, T, T + 15)
    assert b.claim("yard", now=T) is not None
    assert {camera: lease.node for camera, lease in a.owners(now=T + 1).items()} == {"door": "node-a",
                                                                                    "yard": "node-b"}


def test_renew_extends_only_a_lease_in_force_of_its_own_node(database):
    a, b = Leases(database, "node-a", ttl=10), Leases(database, "node-b", ttl=10)
    a.claim("door", now=T)
    assert a.renew("door", now=T + 8) == Lease("door", "node-a", 1, T, T + 18)
    assert a.renew("door", ttl=30, now=T + 9).expires_at == T + 39
    assert b.renew("door", now=T + 9) is None  # not b's
    assert a.renew("yard", now=T) is None  # nobody's
    assert a.renew("door", now=T + 39) is None  # expired: the node must stop, then claim again
    assert a.owner("door", now=T + 39) is None


def test_an_expired_lease_is_taken_over_and_its_generation_grows(database):
    a, b = Leases(database, "node-a", ttl=10), Leases(database, "node-b", ttl=10)
    a.claim("door", now=T)
    assert b.claim("door", now=T + 9.99) is None
    taken = b.claim("door", now=T + 10)  # expires_at <= now: expired
    assert taken == Lease("door", "node-b", 2, T + 10, T + 20)
    assert a.renew("door", now=T + 11) is None and a.claim("door", now=T + 11) is None
    assert a.owner("door", now=T + 11) == taken
    back = a.claim("door", now=T + 25)
    assert back is not None and (back.node, back.generation, back.acquired) == ("node-a", 3, T + 25)


def test_release_frees_the_camera_at_once(database):
    a, b = Leases(database, "node-a", ttl=10), Leases(database, "node-b", ttl=10)
    a.claim("door", now=T)
    a.claim("yard", now=T)
    b.claim("gate", now=T)
    assert not b.release("door")  # not b's to release
    assert a.release("door") and not a.release("door")
    assert b.claim("door", now=T + 1) is not None
    assert [lease.camera for lease in a.held(now=T + 1)] == ["yard"]
    assert a.release_all() == 1 and a.held(now=T + 1) == []
    assert sorted(a.owners(now=T + 1)) == ["door", "gate"]
    assert a.owners(now=T + 11) == {}  # every lease expired


def test_the_database_clock_is_the_default(database):
    a, b = Leases(database, "node-a", ttl=0.5), Leases(database, "node-b", ttl=0.5)
    before = database.clock()
    lease = a.claim("door")
    assert lease is not None and before <= lease.acquired <= before + 5
    assert b.claim("door") is None and a.owner("door") is not None
    time.sleep(0.7)
    assert a.owner("door") is None and a.renew("door") is None
    taken = b.claim("door")
    assert taken is not None and taken.node == "node-b" and taken.generation == 2
    assert abs(database.clock() - time.time()) < 5


def test_node_ids_and_ttls_are_checked(database):
    with pytest.raises(ValueError):
        Leases(database, "")
    with pytest.raises(ValueError):
        Leases(database, "n" * 65)
    with pytest.raises(ValueError):
        Leases(database, "node", ttl=0)


def claim_together(nodes: list[Leases], camera: str, now: float) -> list[Lease | None]:
    """Every node claims `camera` at the same instant (released together by a barrier)."""
    barrier = threading.Barrier(len(nodes))

    def claim(node: Leases) -> Lease | None:
        barrier.wait(timeout=30)
        return node.claim(camera, now=now)

    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(claim, nodes))


def test_two_nodes_claiming_at_once_get_one_winner(backend):
    """Each node on its own Database (engine, connections), as two machines would be."""
    nodes = [Leases(backend.open(), f"node-{i}", ttl=10) for i in range(2)]
    for n in range(25):
        results = claim_together(nodes, f"cam{n}", T)
        winners = [lease for lease in results if lease is not None]
        assert len(winners) == 1, results
        assert winners[0].generation == 1
    owners = nodes[0].owners(now=T + 1)
    assert len(owners) == 25 and all(lease.generation == 1 for lease in owners.values())


def test_nodes_taking_over_an_expired_lease_at_once_get_one_winner(backend):
    nodes = [Leases(backend.open(), f"node-{i}", ttl=10) for i in range(3)]
    for n in range(15):
        camera = f"cam{n}"
        assert nodes[0].claim(camera, now=T) is not None
        results = claim_together(nodes[1:], camera, T + 10 + n)  # node-0 died: its lease expired
        winners = [lease for lease in results if lease is not None]
        assert len(winners) == 1, results
        assert winners[0].generation == 2 and winners[0].node in ("node-1", "node-2")
        assert nodes[0].owner(camera, now=T + 10 + n) == winners[0]
