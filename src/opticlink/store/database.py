"""`Database`: every read and write the service makes, over SQLAlchemy Core.

SQLite by default (a file, or memory for tests and a throwaway demo); the schema is created or
migrated when the database is opened. Calls are short and synchronous: the service makes a few per
login or WebSocket, never per frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.pool import StaticPool

from opticlink.store import schema
from opticlink.store.schema import api_tokens, audit, login_links, sessions, talk_permissions, users

DATABASE_FILE = "opticlink.db"


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: str
    password_hash: str | None
    created: float
    talk: frozenset[str]  # cameras this user may talk to; "*" is every camera


@dataclass(frozen=True, slots=True)
class SessionRow:
    user_id: int
    created: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    user_id: int
    label: str
    created: float
    last_used: float | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: float
    user: str | None
    address: str | None
    action: str
    camera: str | None
    detail: str | None
    ok: bool


def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite leaves them off unless asked, per connection
    # write-ahead log, synced at checkpoints: an audit row or a login costs the event loop no fsync, and
    # `opticlink user ...` may write while the service reads
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """The service's database. `Database.open(directory)` keeps it in `directory/opticlink.db`;
    `Database.open(None)` in memory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        event.listen(engine, "connect", _pragmas)
        with engine.begin() as connection:
            self.version = schema.migrate(connection)

    @classmethod
    def open(cls, directory: Path | None) -> Database:
        if directory is None:
            engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
            return cls(engine)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DATABASE_FILE
        return cls(create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 10}))

    def close(self) -> None:
        self.engine.dispose()

    # users

    def add_user(self, name: str, role: str, password_hash: str | None, created: float,
                 talk: Iterable[str] = ()) -> int:
        with self.engine.begin() as c:
            user_id = c.execute(insert(users).values(name=name, role=role, password_hash=password_hash,
                                                     created=created)).inserted_primary_key[0]
            for camera in set(talk):
                c.execute(insert(talk_permissions).values(user_id=user_id, camera=camera))
        return int(user_id)

    def _users(self, where=None) -> list[UserRow]:  # type: ignore[no-untyped-def]
        query = select(users).order_by(users.c.name)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
            talk: dict[int, set[str]] = {}
            ids = [row.id for row in rows]
            if ids:
                for user_id, camera in c.execute(select(talk_permissions.c.user_id, talk_permissions.c.camera)
                                                 .where(talk_permissions.c.user_id.in_(ids))):
                    talk.setdefault(user_id, set()).add(camera)
        return [UserRow(r.id, r.name, r.role, r.password_hash, r.created, frozenset(talk.get(r.id, ()))) for r in rows]

    def users(self) -> list[UserRow]:
        return self._users()

    def user(self, name: str) -> UserRow | None:
        found = self._users(users.c.name == name)
        return found[0] if found else None

    def user_by_id(self, user_id: int) -> UserRow | None:
        found = self._users(users.c.id == user_id)
        return found[0] if found else None

    def count_users(self, *, with_password: bool = False) -> int:
        query = select(func.count()).select_from(users)
        if with_password:
            query = query.where(users.c.password_hash.is_not(None))
        with self.engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def remove_user(self, name: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(delete(users).where(users.c.name == name)).rowcount > 0

    def set_password(self, name: str, password_hash: str) -> bool:
        """Sets the hash and ends the user's sessions (a changed password logs everyone out)."""
        with self.engine.begin() as c:
            user_id = c.execute(select(users.c.id).where(users.c.name == name)).scalar_one_or_none()
            if user_id is None:
                return False
            c.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
            c.execute(delete(sessions).where(sessions.c.user_id == user_id))
        return True

    def set_user(self, name: str, *, role: str | None = None, talk: Iterable[str] | None = None) -> bool:
        with self.engine.begin() as c:
            user_id = c.execute(select(users.c.id).where(users.c.name == name)).scalar_one_or_none()
            if user_id is None:
                return False
            if role is not None:
                c.execute(update(users).where(users.c.id == user_id).values(role=role))
            if talk is not None:
                c.execute(delete(talk_permissions).where(talk_permissions.c.user_id == user_id))
                for camera in set(talk):
                    c.execute(insert(talk_permissions).values(user_id=user_id, camera=camera))
        return True

    # sessions: keyed by the SHA-256 of the cookie's secret

    def add_session(self, id_hash: str, user_id: int, now: float, address: str | None) -> None:
        with self.engine.begin() as c:
            c.execute(insert(sessions).values(id_hash=id_hash, user_id=user_id, created=now, last_seen=now,
                                              address=address))

    def session(self, id_hash: str) -> SessionRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(sessions).where(sessions.c.id_hash == id_hash)).first()
        return None if row is None else SessionRow(row.user_id, row.created, row.last_seen)

    def touch_session(self, id_hash: str, now: float) -> None:
        with self.engine.begin() as c:
            c.execute(update(sessions).where(sessions.c.id_hash == id_hash).values(last_seen=now))

    def remove_session(self, id_hash: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(delete(sessions).where(sessions.c.id_hash == id_hash)).rowcount > 0

    def remove_stale_sessions(self, created_before: float, seen_before: float) -> int:
        with self.engine.begin() as c:
            return c.execute(delete(sessions).where((sessions.c.created < created_before)
                                                    | (sessions.c.last_seen < seen_before))).rowcount

    # API tokens: keyed by the SHA-256 of the secret

    def add_token(self, user_id: int, label: str, secret_hash: str, now: float) -> int:
        with self.engine.begin() as c:
            return int(c.execute(insert(api_tokens).values(user_id=user_id, label=label, secret_hash=secret_hash,
                                                           created=now)).inserted_primary_key[0])

    def token(self, secret_hash: str) -> TokenRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(api_tokens).where(api_tokens.c.secret_hash == secret_hash)).first()
        return None if row is None else TokenRow(row.id, row.user_id, row.label, row.created, row.last_used)

    def tokens(self, user_id: int) -> list[TokenRow]:
        with self.engine.connect() as c:
            rows = c.execute(select(api_tokens).where(api_tokens.c.user_id == user_id).order_by(api_tokens.c.id))
            return [TokenRow(r.id, r.user_id, r.label, r.created, r.last_used) for r in rows]

    def touch_token(self, token_id: int, now: float) -> None:
        with self.engine.begin() as c:
            c.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used=now))

    def remove_token(self, user_id: int, label: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(delete(api_tokens).where((api_tokens.c.user_id == user_id)
                                                      & (api_tokens.c.label == label))).rowcount > 0

    # one-time login links

    def add_login_link(self, secret_hash: str, user_id: int, expires: float) -> None:
        with self.engine.begin() as c:
            c.execute(insert(login_links).values(secret_hash=secret_hash, user_id=user_id, expires=expires))

    def take_login_link(self, secret_hash: str, now: float) -> int | None:
        """The link's user, once: the link is deleted in the same transaction. None if unknown or expired."""
        with self.engine.begin() as c:
            row = c.execute(select(login_links).where(login_links.c.secret_hash == secret_hash)).first()
            c.execute(delete(login_links).where((login_links.c.secret_hash == secret_hash)
                                                | (login_links.c.expires < now)))
        return None if row is None or row.expires < now else int(row.user_id)

    # the audit log

    def add_audit(self, at: float, action: str, *, user: str | None = None, address: str | None = None,
                  camera: str | None = None, detail: str | None = None, ok: bool = True) -> None:
        with self.engine.begin() as c:
            c.execute(insert(audit).values(at=at, action=action, user=user, address=address, camera=camera,
                                           detail=detail[:400] if detail else None, ok=ok))

    def audit(self, limit: int = 100, before_id: int | None = None) -> list[AuditRow]:
        """The newest entries first."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(audit.c.id < before_id)
        with self.engine.connect() as c:
            return [AuditRow(r.id, r.at, r.user, r.address, r.action, r.camera, r.detail, bool(r.ok))
                    for r in c.execute(query)]

    def audit_between(self, actions: Iterable[str], camera: str, start: float, end: float,
                      limit: int = 5000) -> list[AuditRow]:
        """Entries of `actions` for `camera` between two times, oldest first (at most `limit`)."""
        query = (select(audit).where(audit.c.action.in_(list(actions)) & (audit.c.camera == camera)
                                     & (audit.c.at >= start) & (audit.c.at <= end))
                 .order_by(audit.c.at, audit.c.id).limit(limit))
        with self.engine.connect() as c:
            return [AuditRow(r.id, r.at, r.user, r.address, r.action, r.camera, r.detail, bool(r.ok))
                    for r in c.execute(query)]

    def remove_audit_before(self, at: float) -> int:
        """Forget audit entries older than `at` (the audit log's retention)."""
        with self.engine.begin() as c:
            return c.execute(delete(audit).where(audit.c.at < at)).rowcount
