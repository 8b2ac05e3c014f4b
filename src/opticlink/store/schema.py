"""The tables, and the migrations that bring any older database to the current schema.

`schema_version` holds one row: the number of migrations applied. Each migration is a function of a
connection, applied in order inside one transaction, so a database is never left half migrated.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin, operator, viewer
    Column("password_hash", String(200)),  # argon2id (PHC string); NULL: logs in only through a one-time link
    Column("created", Float, nullable=False),  # Unix seconds
)

# A row per camera the user may talk to; camera "*" is every camera. Admins talk everywhere, viewers nowhere.
talk_permissions = Table(
    "talk_permissions", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(64), primary_key=True),
)

# The cookie's secret is never stored: its SHA-256 is the key (a database leak gives no session).
sessions = Table(
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("address", String(64)),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created", Float, nullable=False),
    Column("last_used", Float),
)

login_links = Table(
    "login_links", metadata,
    Column("secret_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("expires", Float, nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False, index=True),
    Column("user", String(64)),  # the name at the time (kept when the user is removed)
    Column("address", String(64)),
    Column("action", String(32), nullable=False),  # login, login_failed, logout, watch_start, talk_start, ...
    Column("camera", String(64)),
    Column("detail", String(400)),
    Column("ok", Boolean, nullable=False, default=True),
)


def _create_v1(connection: Connection) -> None:
    metadata.create_all(connection)


MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1]


def migrate(connection: Connection) -> int:
    """Apply the migrations this database lacks; returns the schema version now."""
    if not inspect(connection).has_table("schema_version"):
        schema_version.create(connection)
        connection.execute(schema_version.insert().values(version=0))
    version = connection.execute(select(schema_version.c.version)).scalar_one()
    if version > len(MIGRATIONS):
        raise RuntimeError(f"the database has schema version {version}, newer than this OpticLink "
                           f"({len(MIGRATIONS)}): upgrade OpticLink")
    for step in MIGRATIONS[version:]:
        step(connection)
    connection.execute(schema_version.update().values(version=len(MIGRATIONS)))
    return len(MIGRATIONS)
