"""Signing the benchmarks in: every route of the service needs a session or a token.

A bench makes an admin with a session cookie and an API token straight in the service's
database: in process through `Service.gate`, or in the data directory (`OPTICLINK_DATA_DIR`) of a
service it runs as its own process. Such a service also gets the test pages (`tests/web`, at
/static/bench) and the test-only routes (`BENCH_ENV`): the package ships neither.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from opticlink.api.app import BENCH_ENV
from opticlink.auth.gate import Gate
from opticlink.auth.sessions import COOKIE
from opticlink.store import Database

BENCH_PAGES = Path(__file__).resolve().parents[1] / "tests" / "web"  # live.html, judge.html, baseline.js


@dataclass(frozen=True)
class Admin:
    cookie: str
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def browser_cookie(self, url: str) -> dict[str, object]:
        """The session cookie as Playwright's `context.add_cookies` takes it, for the whole site of `url`."""
        parts = urlsplit(url)
        return {"name": COOKIE, "value": self.cookie, "url": f"{parts.scheme}://{parts.netloc}/", "httpOnly": True,
                "sameSite": "Strict"}


def data_dir_env() -> tuple[Path, dict[str, str]]:
    """A fresh data directory, and the environment that points a served process at it (with the bench
    pages and routes)."""
    path = Path(tempfile.mkdtemp(prefix="opticlink-bench-data-"))
    return path, bench_env(path)


def bench_env(data: Path) -> dict[str, str]:
    """The environment of a served process: its data directory, and the bench pages and routes."""
    return {**os.environ, "OPTICLINK_DATA_DIR": str(data), BENCH_ENV: str(BENCH_PAGES)}


def admin(where) -> Admin:  # type: ignore[no-untyped-def]
    """An admin session and token: `where` is a running Service, or a served process's data directory."""
    if isinstance(where, str | Path):
        db = Database.open(Path(where))
        try:
            return _admin(Gate(db))
        finally:
            db.close()
    return _admin(where.gate)


def _admin(gate: Gate) -> Admin:
    user = gate.db.user("bench") or gate.accounts.add("bench", "admin", None, ("*",))
    return Admin(gate.sessions.create(user, "127.0.0.1"), gate.sessions.create_token(user, "bench"))
