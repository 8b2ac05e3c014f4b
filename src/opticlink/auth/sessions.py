"""Browser sessions (a cookie), API tokens (`Authorization: Bearer`) and one-time login links.

Each is a random secret handed out once; the database keeps only its SHA-256 (the secrets are 256
random bits, so a fast hash is enough and a stolen database opens nothing). A session ends after
`idle` seconds without a request or `absolute` seconds after login, whichever comes first.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from opticlink.auth.accounts import principal
from opticlink.auth.roles import Principal
from opticlink.store import Database, UserRow

COOKIE = "opticlink_session"
TOKEN_PREFIX = "olk_"  # recognisable in a config file or a secret scanner
TOUCH_EVERY = 60.0  # seconds: a session's last use is written at most this often (not on every request)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: float = 12 * 3600.0  # seconds without a request before the session ends
    absolute: float = 7 * 86400.0  # seconds after login before it ends regardless
    link_lifetime: float = 24 * 3600.0  # seconds a one-time login link stays valid if unused


class Sessions:
    def __init__(self, db: Database, policy: SessionPolicy | None = None) -> None:
        self.db = db
        self.policy = policy or SessionPolicy()

    # sessions

    def create(self, user: UserRow, address: str | None = None, now: float | None = None) -> str:
        """A new session for `user`; returns the cookie's value (the only copy of the secret)."""
        secret = _secret()
        self.db.add_session(_digest(secret), user.id, time.time() if now is None else now, address)
        return secret

    def resolve(self, secret: str, now: float | None = None) -> Principal | None:
        """Who the session cookie is for, or None if unknown or expired (an expired one is deleted)."""
        now = time.time() if now is None else now
        key = _digest(secret)
        row = self.db.session(key)
        if row is None:
            return None
        if now - row.last_seen > self.policy.idle or now - row.created > self.policy.absolute:
            self.db.remove_session(key)
            return None
        user = self.db.user_by_id(row.user_id)
        if user is None:
            return None
        if now - row.last_seen > TOUCH_EVERY:
            self.db.touch_session(key, now)
        return principal(user, "session")

    def end(self, secret: str) -> bool:
        return self.db.remove_session(_digest(secret))

    def purge(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return self.db.remove_stale_sessions(now - self.policy.absolute, now - self.policy.idle)

    # API tokens

    def create_token(self, user: UserRow, label: str, now: float | None = None) -> str:
        """A new API token for `user`; returns it (shown once, stored hashed)."""
        secret = TOKEN_PREFIX + _secret()
        self.db.add_token(user.id, label[:64], _digest(secret), time.time() if now is None else now)
        return secret

    def resolve_token(self, secret: str, now: float | None = None) -> Principal | None:
        if not secret.startswith(TOKEN_PREFIX):
            return None
        token = self.db.token(_digest(secret))
        if token is None:
            return None
        user = self.db.user_by_id(token.user_id)
        if user is None:
            return None
        now = time.time() if now is None else now
        if token.last_used is None or now - token.last_used > TOUCH_EVERY:
            self.db.touch_token(token.id, now)
        return principal(user, "token")

    # one-time login links

    def create_link(self, user: UserRow, now: float | None = None) -> str:
        """A secret for `/login?token=…` that logs in as `user` once."""
        secret = _secret()
        now = time.time() if now is None else now
        self.db.add_login_link(_digest(secret), user.id, now + self.policy.link_lifetime)
        return secret

    def redeem_link(self, secret: str, now: float | None = None) -> UserRow | None:
        user_id = self.db.take_login_link(_digest(secret), time.time() if now is None else now)
        return None if user_id is None else self.db.user_by_id(user_id)
