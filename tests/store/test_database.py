"""The data-access layer on both backends (SQLite and PostgreSQL, see conftest): the schema and its
migrations, users, sessions, tokens, login links, the audit log, API-added cameras and the recording
index; two nodes on one database; the config's `database:` switch; no database password ever shown."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, update

from opticlink.api.config import ServiceConfig, load_config
from opticlink.store import Database, DatabaseError
from opticlink.store.cameras import CameraStore
from opticlink.store.database import DATABASE_FILE, mask_url, postgresql_url
from opticlink.store.recordings import Recordings
from opticlink.store.schema import MIGRATIONS, schema_version, users

from .backends import Backend, find_postgres_bin

NOW = 1_700_000_000.123456  # a time with microseconds: Float is double precision on PostgreSQL too


def raw_engine(backend: Backend):  # type: ignore[no-untyped-def]
    """An engine on the backend's database without the layer (to build an old schema by hand)."""
    if backend.name == "sqlite":
        backend.directory.mkdir(parents=True, exist_ok=True)
        return create_engine(f"sqlite:///{backend.directory / DATABASE_FILE}")
    return create_engine(postgresql_url(backend.target))


def test_the_schema_is_created_once_and_a_newer_one_is_refused(backend):
    db = backend.open()
    assert db.dialect == backend.name
    db.add_user("ada", "viewer", None, 0.0)
    db.close()
    again = backend.open()
    assert again.version == len(MIGRATIONS) and [u.name for u in again.users()] == ["ada"]
    with again.engine.begin() as connection:
        connection.execute(update(schema_version).values(version=99))
    with pytest.raises(RuntimeError, match="newer than this OpticLink"):
        backend.open()


def test_a_version_1_database_gains_the_later_tables_and_keeps_its_users(backend):
    engine = raw_engine(backend)
    with engine.begin() as connection:
        schema_version.create(connection)
        connection.execute(schema_version.insert().values(version=1))
        MIGRATIONS[0](connection)
        connection.execute(users.insert().values(name="ada", role="admin", created=0.0))
    engine.dispose()
    db = backend.open()
    assert db.version == len(MIGRATIONS) and [u.name for u in db.users()] == ["ada"]
    assert {"segments", "gaps", "garbage", "camera_settings", "cameras", "leases"} <= set(
        inspect(db.engine).get_table_names())


@pytest.mark.peer
def test_nodes_opening_one_database_together_migrate_it_once(postgres_cluster):
    """Under PostgreSQL's advisory lock (SQLite is one node's: not opened by several at once)."""
    from concurrent.futures import ThreadPoolExecutor

    name, url = postgres_cluster.create_database()
    with ThreadPoolExecutor(4) as pool:
        opened = list(pool.map(lambda _: Database.open_url(url), range(4)))
    assert {db.version for db in opened} == {len(MIGRATIONS)}
    opened[0].add_user("ada", "admin", None, 0.0)
    assert [u.name for u in opened[3].users()] == ["ada"]
    for db in opened:
        db.close()
    postgres_cluster.drop_database(name)


def test_users_roles_talk_and_passwords(database):
    ada = database.add_user("ada", "operator", "hash1", NOW, ["door", "yard"])
    database.add_user("bob", "viewer", None, NOW)
    assert [u.name for u in database.users()] == ["ada", "bob"]
    row = database.user("ada")
    assert row is not None and row.id == ada and row.talk == {"door", "yard"} and row.created == NOW
    assert database.user_by_id(ada) == row and database.user("nobody") is None
    assert database.count_users() == 2 and database.count_users(with_password=True) == 1
    assert database.set_user("ada", role="admin", talk=["*"])
    assert database.user("ada").role == "admin" and database.user("ada").talk == {"*"}
    database.add_session("s" * 64, ada, NOW, "127.0.0.1")
    assert database.set_password("ada", "hash2") and database.user("ada").password_hash == "hash2"
    assert database.session("s" * 64) is None  # a changed password logs everyone out
    assert not database.set_password("nobody", "x") and not database.set_user("nobody", role="admin")
    with pytest.raises(Exception):  # noqa: B017 - each backend's IntegrityError
        database.add_user("ada", "viewer", None, NOW)


def test_removing_a_user_removes_their_sessions_tokens_and_permissions(database):
    user_id = database.add_user("ada", "operator", None, 0.0, ["door"])
    database.add_session("s" * 64, user_id, 0.0, None)
    database.add_token(user_id, "api", "t" * 64, 0.0)
    assert database.remove_user("ada") and not database.remove_user("ada")
    assert database.session("s" * 64) is None and database.token("t" * 64) is None


def test_sessions(database):
    user_id = database.add_user("ada", "viewer", None, NOW)
    database.add_session("a" * 64, user_id, NOW, "2001:db8::1" + "0" * 80)  # an address longer than its column
    database.add_session("b" * 64, user_id, NOW - 100, None)
    database.touch_session("a" * 64, NOW + 5)
    row = database.session("a" * 64)
    assert row is not None and (row.user_id, row.created, row.last_seen) == (user_id, NOW, NOW + 5)
    assert database.remove_stale_sessions(created_before=NOW - 50, seen_before=NOW - 50) == 1
    assert database.session("b" * 64) is None
    assert database.remove_session("a" * 64) and not database.remove_session("a" * 64)


def test_tokens(database):
    user_id = database.add_user("ada", "viewer", None, NOW)
    first = database.add_token(user_id, "ci", "1" * 64, NOW)
    second = database.add_token(user_id, "ci", "2" * 64, NOW + 1)
    assert [t.id for t in database.tokens(user_id)] == [first, second]
    database.touch_token(first, NOW + 2)
    token = database.token("1" * 64)
    assert token is not None and token.last_used == NOW + 2 and token.label == "ci"
    assert database.remove_token(user_id, "ci") and database.tokens(user_id) == []


def test_a_login_link_is_taken_once_and_expires(database):
    user_id = database.add_user("ada", "admin", None, NOW)
    database.add_login_link("l" * 64, user_id, NOW + 60)
    database.add_login_link("o" * 64, user_id, NOW - 1)
    assert database.take_login_link("l" * 64, NOW) == user_id
    assert database.take_login_link("l" * 64, NOW) is None
    assert database.take_login_link("o" * 64, NOW) is None  # expired


def test_the_audit_log(database):
    for i in range(5):
        database.add_audit(NOW + i, "watch_start", user="ada", address="127.0.0.1", camera="door", detail=f"n{i}")
    database.add_audit(NOW + 10, "login_failed", user="x" * 200, address="a" * 100, detail="d" * 1000, ok=False)
    newest = database.audit(limit=3)
    assert [r.detail for r in newest] == ["d" * 400, "n4", "n3"]
    assert newest[0].user == "x" * 64 and newest[0].ok is False  # cut to the columns: PostgreSQL refuses longer
    assert [r.detail for r in database.audit(limit=2, before_id=newest[-1].id)] == ["n2", "n1"]
    assert [r.detail for r in database.audit_between(["watch_start"], "door", NOW + 1, NOW + 3)] == ["n1", "n2", "n3"]
    assert database.remove_audit_before(NOW + 2) == 2
    assert len(database.audit()) == 4


def test_cameras_added_through_the_api(database):
    store = CameraStore(database)
    store.put("door", {"id": "door", "url": "rtsp://x/", "password": "pw"}, True, NOW)
    store.put("yard", {"id": "yard", "url": "rtsp://y/"}, True, NOW + 1)
    store.put("door", {"id": "door", "url": "rtsp://z/"}, False, NOW + 2)  # replaced: created kept
    door = store.get("door")
    assert door is not None and door.config == {"id": "door", "url": "rtsp://z/"} and not door.enabled
    assert (door.created, door.updated) == (NOW, NOW + 2)
    assert [c.id for c in store.all()] == ["door", "yard"]
    assert store.remove("door") and not store.remove("door") and store.get("door") is None


def test_the_recording_index(database):
    recordings = Recordings(database)
    assert recordings.new_run("door") == 1
    big = 5_000_000_000_000  # media microseconds past 32 bits
    first = recordings.add_segment("door", 1, "door/a.mov", start_wall=NOW, media_start_us=big,
                                   wall_source="camera", video_codec="h264", audio_codec="pcmu")
    recordings.update_segment(first, end_wall=NOW + 60, media_end_us=big + 60_000_000, bytes=6_000_000_000,
                              frames=1500, keyframes=[big, big + 2_000_000], done=True)
    second = recordings.add_segment("door", 1, "door/b.mov", start_wall=NOW + 60, media_start_us=big + 60_000_000,
                                    wall_source="server", video_codec="h264", audio_codec=None)
    recordings.add_segment("yard", 1, "yard/a.mov", start_wall=NOW, media_start_us=0, wall_source="server",
                           video_codec=None, audio_codec="aac")
    row = recordings.segment(first)
    assert row is not None and row.keyframes == (big, big + 2_000_000) and row.bytes == 6_000_000_000
    assert (row.start_wall, row.end_wall, row.state) == (NOW, NOW + 60, "done")
    assert recordings.new_run("door") == 2
    assert [s.id for s in recordings.segments("door", NOW + 30, NOW + 50)] == [first]
    assert [s.id for s in recordings.segments("door", NOW + 60, None)] == [first, second]
    assert [s.path for s in recordings.segments(state="writing")] == ["yard/a.mov", "door/b.mov"]
    assert recordings.usage("door") == 6_000_000_000 and recordings.usage() == 6_000_000_000
    assert recordings.usage_by_camera() == {"door": 6_000_000_000, "yard": 0}
    assert recordings.last_end_by_camera() == {"door": NOW + 60, "yard": NOW}
    assert recordings.segment_paths() == {"door/a.mov", "door/b.mov", "yard/a.mov"}
    assert recordings.retire([first]) == ["door/a.mov"] and recordings.garbage() == ["door/a.mov"]
    recordings.add_garbage("door/a.mov")  # already listed: once
    recordings.add_garbage("orphan.mov")
    assert recordings.garbage() == ["door/a.mov", "orphan.mov"]
    recordings.forget_garbage("door/a.mov")
    assert recordings.garbage() == ["orphan.mov"] and recordings.segment(first) is None


def test_gaps_and_settings(database):
    recordings = Recordings(database)
    old = recordings.open_gap("door", NOW - 500, "offline", "x" * 1000)
    recordings.close_gap(old, NOW - 400)
    recordings.open_gap("door", NOW, "service_stopped")
    recordings.open_gap("yard", NOW, "disk_full")
    assert [g.cause for g in recordings.gaps("door", open_only=True)] == ["service_stopped"]
    assert [g.id for g in recordings.gaps("door", NOW - 450, NOW - 420)] == [old]
    assert recordings.gaps("door")[0].detail == "x" * 400
    recordings.close_open_gaps("door", NOW + 5)
    assert recordings.gaps("door", open_only=True) == [] and len(recordings.gaps(open_only=True)) == 1
    assert recordings.remove_gaps_before("door", NOW - 300) == 1
    recordings.set_camera_settings("door", {"live_audio": False}, NOW)
    recordings.set_camera_settings("door", {"live_audio": True, "audio_offset_ms": 40}, NOW + 1)
    recordings.set_camera_settings("yard", {}, NOW)
    assert recordings.camera_settings() == {"door": {"audio_offset_ms": 40, "live_audio": True}, "yard": {}}


def test_two_nodes_on_one_database_see_each_others_writes(backend):
    one, two = backend.open(), backend.open()
    ada = one.add_user("ada", "admin", "hash", NOW)
    two.add_session("s" * 64, ada, NOW, None)
    assert one.session("s" * 64) is not None and two.user("ada").password_hash == "hash"
    CameraStore(two).put("door", {"id": "door"}, True, NOW)
    assert [c.id for c in CameraStore(one).all()] == ["door"]


def test_the_service_opens_the_configured_database(backend, tmp_path):
    from opticlink.api.service import Service

    service = Service(ServiceConfig(database=backend.target, data_dir=backend.directory))
    try:
        assert service.database.dialect == backend.name
        service.database.add_user("ada", "admin", None, NOW)
    finally:
        service.database.close()
    assert [u.name for u in backend.open().users()] == ["ada"]
    if backend.name == "sqlite":
        assert (backend.directory / DATABASE_FILE).exists()


def test_a_yaml_selects_the_database(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras: []\n")
    assert load_config(path).database == "file"
    path.write_text("database: postgresql://nvr:s3cret-pw@db.example:5432/opticlink?sslmode=require\n")
    assert load_config(path).database.startswith("postgresql://nvr:s3cret-pw@")
    assert ServiceConfig().database == "memory"


@pytest.mark.parametrize("value", ["mysql://nvr:s3cret-pw@db/opticlink", "postgresql+psycopg2://nvr:s3cret-pw@db/x",
                                   "postgresql://nvr:s3cret-pw@db:port/x", "postgresql://nvr:s3cr@t-pw@db/x",
                                   "sqlite:///s3cret-pw.db"])
def test_a_wrong_database_is_refused_without_showing_its_password(value):
    with pytest.raises(ValueError) as info:
        ServiceConfig(database=value)
    assert "database" in str(info.value) and "s3cret" not in str(info.value) and "t-pw" not in str(info.value)


def test_the_config_never_shows_the_database_password():
    config = ServiceConfig(database="postgresql://nvr:s3cret-pw@db.example/opticlink")
    for text in (repr(config), str(config), f"{config!r}"):
        assert "s3cret-pw" not in text and "postgresql://nvr:***@db.example/opticlink" in text


@pytest.mark.parametrize(("url", "shown", "password"), [
    ("postgresql://nvr:s3cret-pw@db/x", "postgresql://nvr:***@db/x", "s3cret-pw"),
    ("postgresql://nvr@db/x?sslmode=require&password=s3cret-pw", "postgresql://nvr@db/x?sslmode=require&password=***",
     "s3cret-pw"),
    ("postgres://nvr:s3cret%40pw@db/x", "postgres://nvr:***@db/x", "s3cret@pw"),
])
def test_mask_url(url, shown, password):
    assert mask_url(url) == shown
    assert "s3cret" not in mask_url(url, f"FATAL: password {password} (as written: {url}) was wrong")


def test_an_unreachable_server_is_a_clear_error_without_the_password(caplog):
    with socket_closed() as port:
        url = f"postgresql://nvr:s3cret-pw@127.0.0.1:{port}/opticlink"
        started = time.monotonic()
        with caplog.at_level(logging.DEBUG), pytest.raises(DatabaseError) as info:
            Database.connect(url, None)
    assert time.monotonic() - started < 15
    assert "s3cret" not in str(info.value) and "nvr:***@127.0.0.1" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert all("s3cret" not in record.getMessage() for record in caplog.records)


@contextlib.contextmanager
def socket_closed():  # type: ignore[no-untyped-def]
    """A loopback port nothing listens on (bound, not listening: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.mark.peer
def test_a_wrong_password_is_refused_and_never_shown(postgres_cluster, caplog):
    url = postgres_cluster.url("postgres").replace(postgres_cluster.password, "wrong-s3cret-pw")
    with caplog.at_level(logging.DEBUG), pytest.raises(DatabaseError) as info:
        Database.open_url(url)
    assert "password authentication failed" in str(info.value)
    assert "s3cret" not in str(info.value) and all("s3cret" not in r.getMessage() for r in caplog.records)


def test_the_database_repr_and_logs_hold_no_password(backend, caplog):
    with caplog.at_level(logging.DEBUG):
        db = backend.open()
        db.add_user("ada", "admin", None, NOW)
        logging.getLogger("opticlink.test").warning("opened %s", backend.target)  # a careless log line
    if backend.password is not None:
        assert backend.password not in repr(db)
        assert all(backend.password not in record.getMessage() for record in caplog.records)
        assert any("***" in record.getMessage() for record in caplog.records)


def test_missing_postgresql_fails_and_says_what_to_install(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="Install Debian's `postgresql` package"):
        find_postgres_bin(str(tmp_path / "none" / "*" / "bin"), path=str(tmp_path))


@pytest.mark.peer
def test_the_postgresql_server_is_found():
    """Installed by `make system` (a failure here, not a skip, on a machine without it)."""
    assert all((find_postgres_bin() / program).is_file() for program in ("initdb", "pg_ctl", "postgres"))


def test_the_data_dir_database_stays_the_default(tmp_path: Path):
    db = Database.connect("file", tmp_path / "data")
    assert db.dialect == "sqlite" and (tmp_path / "data" / DATABASE_FILE).exists()
    db.close()
    memory = Database.connect("memory", None)
    assert memory.dialect == "sqlite" and repr(memory) == "Database(sqlite://)"
    with pytest.raises(DatabaseError):
        Database.connect("elsewhere", None)
