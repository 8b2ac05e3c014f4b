"""Logging tests in: a user with a session cookie and an API token, made straight in the service's
database (in process through `Service.gate`, or in the data directory a served process uses)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from opticlink.api.app import create_app
from opticlink.auth.gate import Gate
from opticlink.auth.sessions import COOKIE
from opticlink.store import Database


@dataclass(frozen=True)
class Credentials:
    name: str
    cookie: str  # the session cookie's value
    token: str  # an API token

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.cookie}"}

    @property
    def cookies(self) -> dict[str, str]:
        return {COOKIE: self.cookie}


def credentials(where, name: str = "tester", role: str = "admin", talk: Iterable[str] = ("*",),
                password: str | None = None) -> Credentials:
    """A user `name` (made if missing) with a new session and token. `where`: a Service, a Gate, or the
    data directory of a service run as its own process (`data_dir`, its `opticlink.db`)."""
    if isinstance(where, str | Path):
        db = Database.open(Path(where))
        try:
            return credentials(Gate(db), name, role, talk, password)
        finally:
            db.close()
    gate: Gate = where if isinstance(where, Gate) else where.gate
    user = gate.db.user(name) or gate.accounts.add(name, role, password, talk)
    return Credentials(name, gate.sessions.create(user, "127.0.0.1"), gate.sessions.create_token(user, "tests"))


async def sign_in(page, base: str, creds: Credentials) -> None:  # type: ignore[no-untyped-def]
    """Give a Playwright page's browser context the session cookie for `base`."""
    await page.context.add_cookies([{"name": COOKIE, "value": creds.cookie, "url": base, "httpOnly": True,
                                     "sameSite": "Strict"}])


def asgi_client(service) -> httpx.AsyncClient:
    """An HTTP client for the service's app in process, as a browser on 127.0.0.1 would reach it."""
    transport = httpx.ASGITransport(app=create_app(service), client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")
