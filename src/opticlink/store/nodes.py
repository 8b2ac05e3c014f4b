"""The nodes serving one catalog, and the key they sign their hops to one another with.

A node (a `serve` process, or one of its workers) heartbeats its row (`beat`) as it renews its leases:
its `seen_until` is pushed to `now + ttl`. The others count the nodes whose `seen_until` is still ahead
(`live`) to size their fair share of the cameras, and read `address` to forward a camera's streams to
its owner. A node that dies stops beating and drops out after at most `ttl`, with its leases.

Times are Unix seconds by the database's clock (`Database.clock()`), as the leases'.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from opticlink.store.database import Database
from opticlink.store.schema import catalog_settings, nodes

NODE_SECRET = "node_secret"


@dataclass(frozen=True, slots=True)
class NodeRow:
    id: str
    address: str  # http://host:port where the other nodes reach it
    started: float
    seen_until: float


class Nodes:
    """The `nodes` table as one node sees it."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine

    def beat(self, node: str, address: str, *, ttl: float, now: float, started: float | None = None) -> None:
        """This node is alive until `now + ttl`, reachable at `address` (inserted or updated: one statement)."""
        values: dict[str, object] = {"address": address, "seen_until": now + ttl}
        created = {"started": now if started is None else started}
        with self.engine.begin() as c:
            c.execute(self.database.upsert(nodes, {"id": node}, values, created))

    def live(self, *, now: float) -> dict[str, NodeRow]:
        """The nodes alive now, by id."""
        query = select(nodes).where(nodes.c.seen_until > now).order_by(nodes.c.id)
        with self.engine.connect() as c:
            return {r.id: NodeRow(r.id, r.address, float(r.started), float(r.seen_until)) for r in c.execute(query)}

    def leave(self, node: str) -> None:
        """This node stops (a clean shutdown): the others stop counting it at once."""
        with self.engine.begin() as c:
            c.execute(delete(nodes).where(nodes.c.id == node))

    def forget_dead(self, *, before: float) -> int:
        """Rows of nodes not seen since `before` (long dead): kept out of the table."""
        with self.engine.begin() as c:
            return c.execute(delete(nodes).where(nodes.c.seen_until < before)).rowcount


def node_secret(database: Database) -> str:
    """The catalog's node-to-node key, made by the first node that asks (every node reads the same one:
    the insert is a no-op once a row exists)."""
    statement = database.conflict_insert(catalog_settings).values(name=NODE_SECRET, value=secrets.token_urlsafe(32))
    with database.engine.begin() as c:
        c.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
        return str(c.execute(select(catalog_settings.c.value)
                             .where(catalog_settings.c.name == NODE_SECRET)).scalar_one())
