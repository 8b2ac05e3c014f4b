"""Cameras added through the API, kept in the database so they come back after a restart."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, select

from opticlink.store.database import Database
from opticlink.store.schema import cameras


@dataclass(frozen=True, slots=True)
class StoredCamera:
    id: str
    config: dict[str, object]  # CameraConfig fields (JSON), password included
    enabled: bool
    created: float
    updated: float


class CameraStore:
    """Read and write the `cameras` table (one row per API-added camera)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine

    def all(self) -> list[StoredCamera]:
        """Every stored camera, in the order they were added."""
        with self.engine.connect() as c:
            rows = c.execute(select(cameras).order_by(cameras.c.created, cameras.c.id)).all()
        return [StoredCamera(r.id, json.loads(r.config), bool(r.enabled), r.created, r.updated) for r in rows]

    def get(self, camera: str) -> StoredCamera | None:
        return next((row for row in self.all() if row.id == camera), None)

    def put(self, camera: str, config: dict[str, object], enabled: bool, now: float) -> None:
        """Add `camera` or replace its configuration and enabled state."""
        text = json.dumps(config)
        with self.engine.begin() as c:  # one statement: two nodes writing the same camera never collide
            c.execute(self.database.upsert(cameras, {"id": camera},
                                           {"config": text, "enabled": enabled, "updated": now},
                                           created={"created": now}))

    def remove(self, camera: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(delete(cameras).where(cameras.c.id == camera)).rowcount > 0
