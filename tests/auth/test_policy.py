"""The pieces beneath the gate: Host and Origin rules, the login limiter, redaction, the schema."""

import logging

import pytest
from sqlalchemy import update

from opticlink.auth.policy import LoginLimiter, RequestPolicy
from opticlink.auth.redact import RedactingFilter, redact
from opticlink.store import Database
from opticlink.store.schema import MIGRATIONS, schema_version


def test_hosts_are_names_we_are_known_by_or_ip_literals():
    policy = RequestPolicy(hosts=["nvr.home.arpa"], listen_host="0.0.0.0")
    for host in ("127.0.0.1:8080", "[::1]:8080", "LOCALHOST:8080", "localhost", "192.168.1.20", "[fe80::1]:80",
                 "nvr.home.arpa:8443", "0.0.0.0:8080"):
        assert policy.host_allowed(host), host
    for host in ("evil.example", "nvr.home.arpa.evil.example", "127.0.0.1.nip.io:8080", "", None):
        assert not policy.host_allowed(host), host


def test_origins_must_be_the_host_the_request_came_to_or_configured():
    policy = RequestPolicy(origins=["https://wall.example"])
    assert policy.origin_allowed(None, "127.0.0.1:8080")  # not a browser page
    assert policy.origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert policy.origin_allowed("https://127.0.0.1:8080", "127.0.0.1:8080")
    assert policy.origin_allowed("https://wall.example", "127.0.0.1:8080")
    assert not policy.origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8080")
    assert not policy.origin_allowed("http://evil.example", "127.0.0.1:8080")
    assert not policy.origin_allowed("null", "127.0.0.1:8080")  # a sandboxed or file: page
    assert not policy.origin_allowed("http://evil.example:8080", "evil.example:8080")  # rebinding, both ways


def test_the_login_limiter_forgets_old_failures_and_bounds_its_memory():
    limiter = LoginLimiter(failures=3, window=60, max_addresses=100)
    for t in (0, 1, 2):
        limiter.failed("a", now=t)
    assert limiter.retry_after("a", now=3) == pytest.approx(57)
    assert limiter.retry_after("a", now=61) == 0  # the first failure left the window
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", now=100)
    assert len(limiter._seen) == 100


def test_passwords_in_urls_and_known_secrets_are_masked():
    assert redact("rtsp://admin:pa55@cam/x and http://u:p@h") == "rtsp://admin:***@cam/x and http://u:***@h"
    assert redact("camera answered: bad password hunter22", ["hunter22", None, ""]) == \
        "camera answered: bad password ***"
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "url %s", ("rtsp://a:hunter22@h/",), None)
    RedactingFilter(["hunter22"]).filter(record)
    assert record.getMessage() == "url rtsp://a:***@h/"


def test_the_schema_is_created_once_and_a_newer_one_is_refused(tmp_path):
    db = Database.open(tmp_path)
    db.add_user("ada", "viewer", None, 0.0)
    db.close()
    again = Database.open(tmp_path)
    assert again.version == len(MIGRATIONS) and [u.name for u in again.users()] == ["ada"]
    with again.engine.begin() as connection:
        connection.execute(update(schema_version).values(version=99))
    again.close()
    with pytest.raises(RuntimeError, match="newer than this OpticLink"):
        Database.open(tmp_path)


def test_removing_a_user_removes_their_sessions_tokens_and_permissions(tmp_path):
    db = Database.open(tmp_path)
    user_id = db.add_user("ada", "operator", None, 0.0, ["door"])
    db.add_session("s" * 64, user_id, 0.0, None)
    db.add_token(user_id, "api", "t" * 64, 0.0)
    assert db.remove_user("ada")
    assert db.session("s" * 64) is None and db.token("t" * 64) is None


def test_old_audit_entries_are_forgotten(tmp_path):
    db = Database.open(tmp_path)
    db.add_audit(100.0, "login", user="old")
    db.add_audit(10_000.0, "login", user="new")
    assert db.remove_audit_before(5_000.0) == 1
    assert [r.user for r in db.audit()] == ["new"]
    db.close()
