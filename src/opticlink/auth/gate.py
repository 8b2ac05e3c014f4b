"""`Gate`: everything the web service asks of auth, over one database: who a request is for
(session cookie or bearer token), logins and logouts with the failed-login limit, one-time links,
and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

from opticlink.auth.accounts import NAME, Accounts, principal
from opticlink.auth.audit import AuditLog
from opticlink.auth.passwords import verify_password
from opticlink.auth.policy import LoginLimiter, RequestPolicy
from opticlink.auth.roles import Principal, Role
from opticlink.auth.sessions import COOKIE, SessionPolicy, Sessions
from opticlink.store import Database, UserRow

FIRST_ADMIN = "admin"  # the user a first start's one-time link logs in as


class LoginRefused(Exception):
    """A login that failed: `status` 401 (wrong name or password, used link) or 429 (too many tries)."""

    def __init__(self, status: int, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def cookie_value(header: str | None) -> str | None:
    if not header:
        return None
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


class Gate:
    def __init__(self, db: Database, *, policy: RequestPolicy | None = None, sessions: SessionPolicy | None = None,
                 limiter: LoginLimiter | None = None) -> None:
        self.db = db
        self.accounts = Accounts(db)
        self.sessions = Sessions(db, sessions)
        self.policy = policy or RequestPolicy()
        self.limiter = limiter or LoginLimiter()
        self.audit = AuditLog(db)

    def identify(self, headers: Mapping[str, str]) -> Principal | None:
        """Who the request is for: a bearer token first, else the session cookie. `headers` lower-case."""
        token = bearer(headers.get("authorization"))
        if token is not None:
            return self.sessions.resolve_token(token)
        secret = cookie_value(headers.get("cookie"))
        return self.sessions.resolve(secret) if secret else None

    async def log_in(self, name: str, password: str, address: str) -> tuple[Principal, str]:
        """Check a password login; returns the principal and a new session's cookie value."""
        wait = self.limiter.retry_after(address)
        if wait > 0:
            self.audit.record("login_refused", address=address, detail="too many failed logins", ok=False)
            raise LoginRefused(429, "too many failed logins: try again later", wait)
        user = self.db.user(name) if NAME.match(name) else None
        self.limiter.failed(address)  # counted before the check, so parallel guesses cannot outrun the limit
        # argon2 takes ~50 ms of CPU (as long for an unknown name): off the event loop; the database stays on it
        if user is None or not await asyncio.to_thread(verify_password, user.password_hash, password):
            if user is None:
                await asyncio.to_thread(verify_password, None, password)  # the same time as a wrong password
            # a name that is no user's may be a password typed in the wrong field: never recorded
            known = user is not None
            self.audit.record("login_failed", user=name if known else None, address=address,
                              detail=None if known else "unknown user", ok=False)
            raise LoginRefused(401, "wrong user name or password")
        self.limiter.succeeded(address)
        return self._session(user, address, "password")

    def log_in_with_link(self, secret: str, address: str) -> tuple[Principal, str]:
        wait = self.limiter.retry_after(address)
        if wait > 0:
            raise LoginRefused(429, "too many failed logins: try again later", wait)
        user = self.sessions.redeem_link(secret)
        if user is None:
            self.limiter.failed(address)
            self.audit.record("login_failed", address=address, detail="one-time link unknown, used or expired",
                              ok=False)
            raise LoginRefused(401, "this login link was used already or has expired: log in with your password")
        return self._session(user, address, "one-time link")

    def _session(self, user: UserRow, address: str, how: str) -> tuple[Principal, str]:
        secret = self.sessions.create(user, address)
        self.audit.record("login", user=user.name, address=address, detail=how)
        return principal(user, "session"), secret

    def log_out(self, cookie_header: str | None, who: Principal | None, address: str) -> None:
        secret = cookie_value(cookie_header)
        if secret is not None:
            self.sessions.end(secret)
        if who is not None:
            self.audit.record("logout", user=who.name, address=address)

    def first_run_link(self, *, always: bool = False) -> str | None:
        """The secret of a one-time login link when no user can log in with a password (a first start),
        or `always` (the demo); it logs in as the first admin, created without a password if need be."""
        if not always and self.db.count_users(with_password=True) > 0:
            return None
        admins = [u for u in self.db.users() if u.role == Role.ADMIN.value]
        if admins:
            user = admins[0]
        else:
            taken = {u.name for u in self.db.users()}
            name = next(n for n in (FIRST_ADMIN, *(f"{FIRST_ADMIN}{i}" for i in range(2, 1000))) if n not in taken)
            user = self.accounts.add(name, Role.ADMIN, None)
        return self.sessions.create_link(user)
