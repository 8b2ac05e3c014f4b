"""Users: add, remove, change a password, check a login. Passwords only ever pass through here."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from opticlink.auth.passwords import hash_password, verify_password
from opticlink.auth.roles import Principal, Role
from opticlink.store import Database, UserRow

NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # shown to others as the talker: no markup, no spaces


class AccountError(ValueError):
    """A user could not be added or changed; the message says why."""


def principal(user: UserRow, via: str) -> Principal:
    return Principal(user.id, user.name, Role(user.role), user.talk, via)


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, role: str | Role, password: str | None, talk: Iterable[str] = ()) -> UserRow:
        if not NAME.match(name):
            raise AccountError(f"a user name has 1 to 64 letters, digits or _.@- (not {name!r})")
        role = self._role(role)
        if self.db.user(name) is not None:
            raise AccountError(f"user {name!r} exists")
        password_hash = hash_password(password) if password is not None else None
        self.db.add_user(name, role.value, password_hash, time.time(), talk)
        user = self.db.user(name)
        assert user is not None
        return user

    def remove(self, name: str) -> None:
        if not self.db.remove_user(name):
            raise AccountError(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        if not self.db.set_password(name, hash_password(password)):
            raise AccountError(f"no user {name!r}")

    def change(self, name: str, *, role: str | Role | None = None, talk: Iterable[str] | None = None) -> None:
        if not self.db.set_user(name, role=None if role is None else self._role(role).value, talk=talk):
            raise AccountError(f"no user {name!r}")

    def list(self) -> list[UserRow]:
        return self.db.users()

    def authenticate(self, name: str, password: str) -> UserRow | None:
        """The user if `password` is theirs; takes an argon2 verification's time either way."""
        user = self.db.user(name) if NAME.match(name) else None
        ok = verify_password(user.password_hash if user is not None else None, password)
        return user if ok else None

    @staticmethod
    def _role(role: str | Role) -> Role:
        try:
            return Role(role)
        except ValueError:
            raise AccountError(f"a role is one of {', '.join(r.value for r in Role)} (not {role!r})") from None
