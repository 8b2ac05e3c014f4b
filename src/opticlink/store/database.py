"""`Database`: every read and write the service makes, over SQLAlchemy Core.

SQLite by default (a file, or memory for tests and a throwaway demo), or PostgreSQL (`database:
postgresql://…` in the service's config, through psycopg 3) so that several nodes share one catalog;
the schema is created or migrated when the database is opened. One code path serves both: the few
dialect differences (SQLite's pragmas, upserts, the migration lock, the database's clock) are handled
here and in `schema`. Calls are short and synchronous: the service makes a few per login or WebSocket,
never per frame.

A password in a database URL is never printed or logged: `mask_url` gives the URL to show, errors
are rewritten through it, and the password joins the log redaction of camera passwords.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from sqlalchemy import URL, Engine, String, Table, create_engine, delete, event, func, insert, make_url, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from opticlink.auth.redact import MASK, install_log_redaction, redact
from opticlink.store import schema
from opticlink.store.schema import api_tokens, audit, login_links, sessions, talk_permissions, users

DATABASE_FILE = "opticlink.db"
POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")  # all go through psycopg 3
DATABASE_TARGETS = "file (data_dir/opticlink.db), memory, or a postgresql://user:password@host:port/name URL"


class DatabaseError(ValueError):
    """The database could not be opened (a URL refused, a server not answering); the message holds no
    password."""


def is_database_url(target: str) -> bool:
    return target.split("://", 1)[0].lower() in POSTGRESQL_SCHEMES and "://" in target


def _url_secrets(target: str) -> list[str]:
    """The password of a database URL (in its user info or a `password=` parameter): as written, decoded
    and encoded, longest first."""
    found = re.findall(r"[?&]password=([^&\s]*)", target)
    userinfo = re.match(r"^[^:/]+://([^@]*)@", target)
    if userinfo and ":" in userinfo.group(1):
        found.append(userinfo.group(1).split(":", 1)[1])
    with contextlib.suppress(ArgumentError, ValueError):
        url = make_url(target)
        value = url.query.get("password")
        found += [url.password or "", *([value] if isinstance(value, str) else value or ())]
    secrets = {s for s in found if s}
    secrets |= {unquote(s) for s in secrets} | {quote(s, safe="") for s in secrets}
    return sorted((s for s in secrets if s), key=len, reverse=True)


def mask_url(target: str, text: str | None = None) -> str:
    """`text` (default: the URL itself) with the password of the database URL `target` masked, as camera
    URLs are (`postgresql://user:***@host/name`)."""
    return re.sub(r"([?&]password=)[^&\s]*", rf"\g<1>{MASK}", redact(target if text is None else text,
                                                                     _url_secrets(target)))


def postgresql_url(target: str) -> URL:
    """The SQLAlchemy URL of a `postgresql://` target, on the psycopg 3 driver. ValueError (naming no
    password) if it is not one."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in POSTGRESQL_SCHEMES:
        raise ValueError(f"database: {DATABASE_TARGETS}")
    if rest.split("?", 1)[0].count("@") > 1:
        raise ValueError("database: write an @ in the user name or password as %40")
    try:
        url = make_url(target)
    except (ArgumentError, ValueError):
        raise ValueError(f"database: not a URL SQLAlchemy reads; {DATABASE_TARGETS}") from None
    return url.set(drivername="postgresql+psycopg")


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


def _fit(table: Table, values: dict[str, object]) -> dict[str, object]:
    """`values` with each string cut to its column's length (PostgreSQL refuses a longer one; SQLite kept it)."""
    out = dict(values)
    for name, value in values.items():
        kind = table.c[name].type
        if isinstance(value, str) and isinstance(kind, String) and kind.length and len(value) > kind.length:
            out[name] = value[:kind.length]
    return out


class Database:
    """The service's database. `Database.open(directory)` keeps it in `directory/opticlink.db`;
    `Database.open(None)` in memory; `Database.open_url("postgresql://…")` on a PostgreSQL server;
    `Database.connect(target, directory)` any of them by the config's `database` value."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name  # sqlite, postgresql
        if self.dialect == "sqlite":
            event.listen(engine, "connect", _pragmas)
        with engine.begin() as connection:
            self.version = schema.migrate(connection)

    @classmethod
    def open(cls, directory: Path | None) -> Database:
        if directory is None:
            engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False},
                                   hide_parameters=True)
            return cls(engine)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DATABASE_FILE
        return cls(create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 10},
                                 hide_parameters=True))

    @classmethod
    def open_url(cls, target: str, *, connect_timeout: float = 10.0) -> Database:
        """A PostgreSQL database (`postgresql://user:password@host:port/name`, with libpq's parameters such
        as `?sslmode=require`; a password may also come from PGPASSWORD or ~/.pgpass), migrated on open.
        DatabaseError, with the password masked, if it cannot be reached."""
        url = postgresql_url(target)
        install_log_redaction(_url_secrets(target))  # whatever logs it later, the password shows as ***
        connect_args: dict[str, object] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = max(1, round(connect_timeout))
        if "application_name" not in url.query:
            connect_args["application_name"] = "opticlink"
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
        try:
            return cls(engine)
        except DBAPIError as exc:
            engine.dispose()
            reason = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DatabaseError(mask_url(target, f"cannot open the database {target}: {reason}")) from None

    @classmethod
    def connect(cls, target: str, directory: Path | None) -> Database:
        """By the service config's `database`: "file" (`directory/opticlink.db`), "memory", or a
        `postgresql://` URL."""
        if target == "file":
            return cls.open(directory)
        if target == "memory":
            return cls.open(None)
        if is_database_url(target):
            return cls.open_url(target)
        raise DatabaseError(f"database: {DATABASE_TARGETS}")

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.engine.dispose()

    # what differs between the backends

    def clock(self) -> float:
        """Now in Unix seconds by the database's clock: the server's for PostgreSQL (nodes whose clocks
        disagree agree on it), this machine's for SQLite (embedded: the same clock)."""
        if self.dialect == "postgresql":
            with self.engine.connect() as c:
                return float(c.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one())
        return time.time()

    def conflict_insert(self, table: Table) -> Insert:
        """An INSERT with the dialect's ON CONFLICT clauses (`on_conflict_do_update`, `..._do_nothing`,
        `excluded`): SQLite's and PostgreSQL's spell them alike."""
        if self.dialect == "postgresql":
            return postgresql_dialect.insert(table)
        if self.dialect == "sqlite":
            return sqlite_dialect.insert(table)
        raise NotImplementedError(f"no upsert for {self.dialect}")

    def upsert(self, table: Table, keys: Mapping[str, object], values: Mapping[str, object],
               created: Mapping[str, object] | None = None):  # type: ignore[no-untyped-def]
        """INSERT `keys` + `values` (+ `created`, only when inserting), or UPDATE `values` of the row with
        `keys`: one statement, atomic on both backends."""
        statement = self.conflict_insert(table).values(**keys, **values, **(created or {}))
        return statement.on_conflict_do_update(index_elements=list(keys),
                                               set_={name: statement.excluded[name] for name in values})

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
            c.execute(insert(sessions).values(**_fit(sessions, {"id_hash": id_hash, "user_id": user_id, "created": now,
                                                                "last_seen": now, "address": address})))

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
        """The link's user, once: the link is deleted by the statement that reads it (two nodes taking the
        same link at once: one gets the user). None if unknown or expired."""
        with self.engine.begin() as c:
            row = c.execute(delete(login_links).where(login_links.c.secret_hash == secret_hash)
                            .returning(login_links.c.user_id, login_links.c.expires)).first()
            c.execute(delete(login_links).where(login_links.c.expires < now))
        return None if row is None or row.expires < now else int(row.user_id)

    # the audit log

    def add_audit(self, at: float, action: str, *, user: str | None = None, address: str | None = None,
                  camera: str | None = None, detail: str | None = None, ok: bool = True) -> None:
        with self.engine.begin() as c:
            c.execute(insert(audit).values(**_fit(audit, {"at": at, "action": action, "user": user, "address": address,
                                                          "camera": camera, "detail": detail or None, "ok": ok})))

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
