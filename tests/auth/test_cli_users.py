"""`opticlink user ...` and the one-time login link the demo and a first `serve` print."""

import asyncio
import io
import os
import re
import sys

import httpx
import pytest

from opticlink.auth.sessions import COOKIE
from opticlink.cli import main
from opticlink.store import Database

OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")
PASSWORD = "tr0ub4dor&3-long"


def _user(monkeypatch, data_dir, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))  # piped: not a terminal, so read, not prompted
    return main(["user", "--data-dir", str(data_dir), *args])


def test_users_are_added_listed_changed_and_removed_without_showing_a_password(tmp_path, monkeypatch, capsys):
    assert _user(monkeypatch, tmp_path, "add", "ada", "--role", "operator", "--talk", "door,yard",
                 stdin=PASSWORD + "\n") == 0
    assert _user(monkeypatch, tmp_path, "add", "vic", "--role", "viewer", stdin="another-password\n") == 0
    assert _user(monkeypatch, tmp_path, "list") == 0
    out = capsys.readouterr().out
    assert "ada\toperator\ttalk: door,yard" in out and "vic\tviewer\ttalk: -" in out
    assert _user(monkeypatch, tmp_path, "add", "ada", "--role", "viewer", stdin=PASSWORD + "\n") == 2
    assert "user 'ada' exists" in capsys.readouterr().err
    assert _user(monkeypatch, tmp_path, "add", "bo", "--role", "viewer", stdin="short\n") == 2
    assert "8 to 1024 characters" in capsys.readouterr().err
    db = Database.open(tmp_path)
    first_hash = db.user("ada").password_hash
    assert first_hash.startswith("$argon2id$") and PASSWORD not in first_hash
    assert _user(monkeypatch, tmp_path, "passwd", "ada", stdin="a-new-password\n") == 0
    assert db.user("ada").password_hash != first_hash
    assert _user(monkeypatch, tmp_path, "set", "vic", "--role", "operator", "--talk", "*") == 0
    assert db.user("vic").role == "operator" and db.user("vic").talk == {"*"}
    assert _user(monkeypatch, tmp_path, "remove", "vic") == 0
    assert [u.name for u in db.users()] == ["ada"]
    assert _user(monkeypatch, tmp_path, "remove", "vic") == 2
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err and "a-new-password" not in captured.out + captured.err
    assert [row.action for row in reversed(db.audit())] == ["user_add", "user_add", "user_passwd", "user_change",
                                                          "user_remove"]


async def _first_line(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(OPTICLINK, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    return proc, [(await asyncio.wait_for(proc.stdout.readline(), 60)).decode()]


@pytest.mark.slow
async def test_the_demo_prints_a_login_link_that_logs_in_once():
    proc, (line,) = await _first_line("demo", "--port", "0", "--sim-port", "0")
    try:
        link = re.search(r"http://\S+", line).group(0)
        assert "/login?token=" in link
        base = link.split("/login")[0]
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/api/cameras")).status_code == 401
            response = await client.get(link)
            assert response.status_code == 303 and response.headers["location"] == "/"
            assert COOKIE in client.cookies
            assert (await client.get("/api/me")).json()["role"] == "admin"
            assert len((await client.get("/api/cameras")).json()) == 4
        async with httpx.AsyncClient() as stranger:
            assert (await stranger.get(link)).status_code == 401  # used: the link works once
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.slow
async def test_a_first_serve_prints_a_login_link_and_a_token_opens_the_metrics(tmp_path, capsys):
    from opticlink.cli import _user as user_verb
    from opticlink.cli import build_parser

    config = tmp_path / "cameras.yaml"
    config.write_text(f"data_dir: {tmp_path}\ncameras: []\n")
    proc, (line,) = await _first_line("serve", str(config), "--port", "0")
    try:
        base = re.search(r"http://\S+", line).group(0)
        second = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        link = re.search(r"http://\S+", second).group(0)
        assert link.startswith(base + "/login?token=") and "opticlink user passwd admin" in second
        args = build_parser().parse_args(["user", "--config", str(config), "token", "admin", "--label", "prometheus"])
        assert await user_verb(args) == 0
        token = capsys.readouterr().out.strip()
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/metrics")).status_code == 401
            metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert metrics.status_code == 200 and "opticlink_viewers" in metrics.text
            args = build_parser().parse_args(["user", "--config", str(config), "token", "admin", "--label",
                                              "prometheus", "--revoke"])
            assert await user_verb(args) == 0
            assert (await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    finally:
        proc.terminate()
        await proc.wait()
