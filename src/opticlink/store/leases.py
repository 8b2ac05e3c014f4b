"""Camera leases: which node owns which camera, for a while. The seam for multi-node ownership.

Nodes started on the same PostgreSQL database (`database: postgresql://…`) share its cameras: each
camera is recorded and served by exactly one node, the holder of its lease. A lease is a row (camera,
node, expires_at): a node **claims** a camera (it gets the lease if nobody holds it or the holder's
lease has expired: claiming an expired lease takes it over), **renews** it well before it expires
(every `ttl / 3`, say) and **releases** it when it stops the camera (or `release_all` when it shuts
down, so the others need not wait for expiry). A node that dies stops renewing: its leases expire
after at most `ttl` and the other nodes' next claims take its cameras. **Owners** lists who holds
what, for a node to find the owner of a camera it does not run (to proxy its live and playback
streams from there; recordings stay on the owner's disk).

What is here is only that data layer. The node-side loop (claim unowned cameras, renew, stop a camera
whose renewal failed, at once: another node may already have it), the placement policy (which node
claims which camera) and the proxying are built on these calls in `opticlink.cluster`.

Each operation is one SQL statement, atomic on both backends: a claim is `INSERT … ON CONFLICT (camera)
DO UPDATE … WHERE the lease expired or is the claimer's`, so of two nodes claiming one camera at the
same instant exactly one gets it (PostgreSQL re-checks the condition on the row the other committed;
SQLite runs one writer at a time). `generation` grows each time the camera changes hands: a fencing
token a node can write beside what it does as owner, so a node that lost its lease without noticing
is told apart from the new owner.

Times are Unix seconds by the database's clock (`Database.clock()`: the PostgreSQL server's), so nodes
whose clocks disagree still agree on when a lease expires; tests pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, delete, select, update

from opticlink.store.database import Database
from opticlink.store.schema import leases

DEFAULT_TTL = 6.0  # seconds: renewed every 2 s, a dead node's cameras are free again within 6 s


@dataclass(frozen=True, slots=True)
class Lease:
    camera: str
    node: str
    generation: int  # grows by one each time another node takes the camera
    acquired: float  # when `node` took it (renewals keep it)
    expires_at: float


def _lease(row) -> Lease:  # type: ignore[no-untyped-def]
    return Lease(row.camera, row.node, int(row.generation), float(row.acquired), float(row.expires_at))


class Leases:
    """One node's view of the `leases` table: it claims, renews and releases as `node`; `owners` shows
    every node's."""

    def __init__(self, database: Database, node: str, ttl: float = DEFAULT_TTL) -> None:
        if not 0 < len(node) <= leases.c.node.type.length:
            raise ValueError(f"a node id has 1 to {leases.c.node.type.length} characters")
        if ttl <= 0:
            raise ValueError("a lease's time to live is positive")
        self.database = database
        self.engine = database.engine
        self.node = node
        self.ttl = ttl

    def _now(self, now: float | None) -> float:
        return self.database.clock() if now is None else now

    def claim(self, camera: str, *, ttl: float | None = None, now: float | None = None) -> Lease | None:
        """Take `camera` for `ttl` seconds if it is free, its lease has expired (a takeover: `generation`
        grows) or this node holds it already (then it is renewed). None: another node holds it."""
        now = self._now(now)
        statement = self.database.conflict_insert(leases).values(camera=camera, node=self.node, generation=1,
                                                                 acquired=now, expires_at=now + (ttl or self.ttl))
        same_node = leases.c.node == statement.excluded.node
        statement = statement.on_conflict_do_update(
            index_elements=["camera"],
            set_={"node": statement.excluded.node,
                  "expires_at": statement.excluded.expires_at,
                  "generation": case((same_node, leases.c.generation), else_=leases.c.generation + 1),
                  "acquired": case((same_node, leases.c.acquired), else_=statement.excluded.acquired)},
            where=same_node | (leases.c.expires_at <= now),
        ).returning(*leases.c)
        with self.engine.begin() as c:
            row = c.execute(statement).first()
        return None if row is None else _lease(row)

    def renew(self, camera: str, *, ttl: float | None = None, now: float | None = None) -> Lease | None:
        """Extend this node's lease on `camera` to `now + ttl`. None: the lease is not this node's any more
        (expired, or taken): the node must stop acting as the camera's owner at once (it may `claim` again)."""
        now = self._now(now)
        statement = (update(leases)
                     .where((leases.c.camera == camera) & (leases.c.node == self.node) & (leases.c.expires_at > now))
                     .values(expires_at=now + (ttl or self.ttl))
                     .returning(*leases.c))
        with self.engine.begin() as c:
            row = c.execute(statement).first()
        return None if row is None else _lease(row)

    def renew_all(self, *, ttl: float | None = None, now: float | None = None) -> set[str]:
        """Extend every lease this node holds in force to `now + ttl`, in one statement; the cameras
        renewed. A camera the node runs that is not among them is lost: stop it at once."""
        now = self._now(now)
        statement = (update(leases)
                     .where((leases.c.node == self.node) & (leases.c.expires_at > now))
                     .values(expires_at=now + (ttl or self.ttl))
                     .returning(leases.c.camera))
        with self.engine.begin() as c:
            return {row.camera for row in c.execute(statement)}

    def release(self, camera: str) -> bool:
        """Give `camera` up (this node stopped it): another node may claim it at once. False: not ours."""
        with self.engine.begin() as c:
            return c.execute(delete(leases).where((leases.c.camera == camera)
                                                  & (leases.c.node == self.node))).rowcount > 0

    def release_all(self) -> int:
        """Give up every camera this node holds (it is shutting down); how many."""
        with self.engine.begin() as c:
            return c.execute(delete(leases).where(leases.c.node == self.node)).rowcount

    def owners(self, *, now: float | None = None) -> dict[str, Lease]:
        """Every camera with a lease in force, by camera (any node's; expired leases are left out)."""
        now = self._now(now)
        query = select(leases).where(leases.c.expires_at > now).order_by(leases.c.camera)
        with self.engine.connect() as c:
            return {row.camera: _lease(row) for row in c.execute(query)}

    def owner(self, camera: str, *, now: float | None = None) -> Lease | None:
        """The lease in force on `camera`, None if nobody holds it."""
        now = self._now(now)
        query = select(leases).where((leases.c.camera == camera) & (leases.c.expires_at > now))
        with self.engine.connect() as c:
            row = c.execute(query).first()
        return None if row is None else _lease(row)

    def held(self, *, now: float | None = None) -> list[Lease]:
        """This node's leases in force."""
        return [lease for lease in self.owners(now=now).values() if lease.node == self.node]
