"""The audit log: who logged in, watched or talked to which camera, and when; a row in the database
and a line in the service log. Never a password or a token (the callers pass neither)."""

from __future__ import annotations

import logging
import time

from opticlink.store import Database

log = logging.getLogger("opticlink.audit")


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, action: str, *, user: str | None = None, address: str | None = None,
               camera: str | None = None, detail: str | None = None, ok: bool = True) -> None:
        self.db.add_audit(time.time(), action, user=user, address=address, camera=camera, detail=detail, ok=ok)
        log.log(logging.INFO if ok else logging.WARNING, "%s user=%s address=%s%s%s", action, user or "-",
                address or "-", f" camera={camera}" if camera else "", f" ({detail})" if detail else "")
