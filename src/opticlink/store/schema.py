"""The tables, and the migrations that bring any older database to the current schema.

`schema_version` holds one row: the number of migrations applied. Each migration is a function of a
connection, applied in order inside one transaction, so a database is never left half migrated (on
PostgreSQL too: its DDL is transactional). The tables use only types both backends share (SQLite, and
PostgreSQL, where `Float` is double precision and `String(n)` is enforced); on PostgreSQL nodes starting
together migrate one at a time, under an advisory lock.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
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


# Recording. A segment is one file of about a minute; a run is an unbroken stretch of recording of one
# camera (a reconnect, a gap, a restart begins a new run). Media time (`media_*_us`) is the run's
# recording clock in microseconds, continuous across the run's segments: file time 0 of a segment is
# its `media_start_us`. Wall time (`*_wall`, Unix seconds) is kept apart: a segment's wall start comes
# from the camera's Sender Reports when it sends them (`wall_source` "camera"), else the server clock
# ("server"); within a segment wall time runs linearly from `start_wall` to `end_wall`.
segments = Table(
    "segments", metadata,
    Column("id", Integer, primary_key=True),
    Column("camera", String(64), nullable=False),
    Column("run", Integer, nullable=False),  # segments of a run play one after the other with no gap
    Column("path", String(400), nullable=False, unique=True),  # relative to the recordings folder
    Column("state", String(16), nullable=False),  # writing (being written, or a crash left it), done
    Column("start_wall", Float, nullable=False),
    Column("end_wall", Float, nullable=False),
    Column("media_start_us", BigInteger, nullable=False),
    Column("media_end_us", BigInteger, nullable=False),
    Column("wall_source", String(16), nullable=False),  # camera, server
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("frames", Integer, nullable=False, default=0),  # video frames (audio frames for an audio-only camera)
    Column("video_codec", String(16)),  # h264, h265; NULL: no video track
    Column("audio_codec", String(16)),  # pcmu, pcma, l16, aac; NULL: no audio track (record_audio: false)
    Column("keyframes", Text, nullable=False, default="[]"),  # JSON: media_us of each video keyframe in the file
    Index("segments_camera_wall", "camera", "start_wall"),
)

# Time a camera was not recorded, and why: camera offline, reconnect, disk full, recorder overflow, stopped.
gaps = Table(
    "gaps", metadata,
    Column("id", Integer, primary_key=True),
    Column("camera", String(64), nullable=False),
    Column("start_wall", Float, nullable=False),
    Column("end_wall", Float),  # NULL: still going on
    Column("cause", String(32), nullable=False),
    Column("detail", String(400)),
    Index("gaps_camera_wall", "camera", "start_wall"),
)

# Files to delete (Moonfire NVR's garbage list): a segment's row moves here in the transaction that
# removes it; the file is unlinked after, and the row goes once the file is gone. A crash in between
# leaves a row whose deletion is retried; never an indexed segment without its file.
garbage = Table(
    "garbage", metadata,
    Column("id", Integer, primary_key=True),
    Column("path", String(400), nullable=False, unique=True),
)

# What an admin changed on the page, per camera, over the YAML's values (JSON of CameraConfig fields).
camera_settings = Table(
    "camera_settings", metadata,
    Column("camera", String(64), primary_key=True),
    Column("settings", Text, nullable=False),
    Column("updated", Float, nullable=False),
)

# Cameras added by an admin through the API (a camera the YAML declares is not kept here: the file wins for
# it). `config` is the CameraConfig as JSON, password included (the database is readable only by the
# service's user, as the YAML is); `enabled` false keeps the camera's configuration but does not run it.
cameras = Table(
    "cameras", metadata,
    Column("id", String(64), primary_key=True),
    Column("config", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
)

# Which node owns which camera (`store.leases`): a row per camera claimed, until `expires_at` (Unix seconds
# by the database's clock) unless renewed. `generation` counts owners: it grows each time another node
# takes the camera (a fencing token). `acquired`: when the current owner took it.
leases = Table(
    "leases", metadata,
    Column("camera", String(64), primary_key=True),
    Column("node", String(64), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("acquired", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("leases_node", "node"),
)

V1 = ("schema_version", "users", "talk_permissions", "sessions", "api_tokens", "login_links", "audit")
V2 = ("segments", "gaps", "garbage", "camera_settings")
V3 = ("cameras",)
# The nodes serving one catalog (`cluster`): each heartbeats its row while it runs; a node whose
# `seen_until` passed is dead (its leases expire as well). `address` is where the others reach it
# (http://127.0.0.1:PORT: an internal listener of its own, even when the nodes share a public port).
nodes = Table(
    "nodes", metadata,
    Column("id", String(64), primary_key=True),
    Column("address", String(200), nullable=False),
    Column("started", Float, nullable=False),  # Unix seconds, the database's clock
    Column("seen_until", Float, nullable=False),
)

# Settings of the whole catalog: `node_secret` is the key nodes sign their hops to one another with
# (made once by the first node; only something that can read the catalog can forge a hop).
catalog_settings = Table(
    "catalog_settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(400), nullable=False),
)

V4 = ("leases",)
V5 = ("nodes", "catalog_settings")


def _create_v1(connection: Connection) -> None:
    metadata.create_all(connection, tables=[metadata.tables[name] for name in V1])


def _create_v2(connection: Connection) -> None:
    metadata.create_all(connection, tables=[metadata.tables[name] for name in V2])


def _create_v3(connection: Connection) -> None:
    metadata.create_all(connection, tables=[metadata.tables[name] for name in V3])


def _create_v4(connection: Connection) -> None:
    metadata.create_all(connection, tables=[metadata.tables[name] for name in V4])


def _create_v5(connection: Connection) -> None:
    metadata.create_all(connection, tables=[metadata.tables[name] for name in V5])


MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1, _create_v2, _create_v3, _create_v4, _create_v5]

MIGRATION_LOCK = 0x4F50544C  # "OPTL": PostgreSQL's advisory lock key for migrations


def migrate(connection: Connection) -> int:
    """Apply the migrations this database lacks; returns the schema version now."""
    if connection.dialect.name == "postgresql":  # another node may be migrating: wait for it (to commit)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
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
