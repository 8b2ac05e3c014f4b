"""The PostgreSQL server the store's tests use, and the backends a test runs on (see conftest)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opticlink.store import Database

PG_BIN_DIRS = "/usr/lib/postgresql/*/bin"  # Debian's layout: one folder per major version
PROGRAMS = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "opticlink"
UNPRIVILEGED = "nobody"


def _version(directory: str) -> tuple[int, ...]:
    name = Path(directory).parent.name
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def find_postgres_bin(dirs: str = PG_BIN_DIRS, path: str | None = None) -> Path:
    """The folder holding initdb, pg_ctl and postgres (the newest Debian version, else from PATH).
    Fails the test, saying what to install, when there is none."""
    for directory in sorted(glob.glob(dirs), key=_version, reverse=True):
        if all((Path(directory) / program).is_file() for program in PROGRAMS):
            return Path(directory)
    found = shutil.which("initdb", path=path)
    if found is not None:
        directory = Path(found).resolve().parent
        if all((directory / program).is_file() for program in PROGRAMS):
            return directory
    pytest.fail(f"PostgreSQL's server is not installed: no {', '.join(PROGRAMS)} in {dirs} or on PATH. "
                "Install Debian's `postgresql` package (`make system` does: it is in the Makefile's APT_PACKAGES); "
                "the PostgreSQL tests never skip", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running throwaway PostgreSQL server: `create_database()` gives the URL of a new, empty database."""

    root: Path
    bin: Path
    port: int
    password: str
    run_as: dict[str, object]
    env: dict[str, str]
    count: int = 0

    def url(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{name}"

    def admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
                               dbname="postgres", autocommit=True, connect_timeout=10)

    def create_database(self) -> tuple[str, str]:
        self.count += 1
        name = f"t{os.getpid()}_{self.count}"
        with self.admin() as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), *args], env=self.env,
                              capture_output=True, text=True, timeout=120, check=check, **self.run_as)  # type: ignore[call-overload]


def start_cluster() -> Cluster:
    bin_dir = find_postgres_bin()
    as_root = os.geteuid() == 0
    # as root, in /tmp: a TMPDIR of root's own (mode 0700) would keep nobody out
    root = Path(tempfile.mkdtemp(prefix="opticlink-pg-", dir="/tmp" if as_root else None))
    run_as: dict[str, object] = {}
    if as_root:  # initdb refuses root: the cluster is nobody's
        try:
            user = pwd.getpwnam(UNPRIVILEGED)
        except KeyError:
            pytest.fail(f"the tests run as root and there is no {UNPRIVILEGED!r} user to run PostgreSQL as",
                        pytrace=False)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        os.chown(root, user.pw_uid, user.pw_gid)
    password = secrets.token_hex(12)
    password_file = root / "password"
    password_file.write_text(password + "\n")
    if run_as:
        os.chown(password_file, run_as["user"], run_as["group"])  # type: ignore[arg-type]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "HOME": str(root)}
    initdb = subprocess.run([str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER,
                             f"--pwfile={password_file}", "--auth-local=trust", "--auth-host=scram-sha-256",
                             "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                            env=env, capture_output=True, text=True, timeout=120, **run_as)  # type: ignore[call-overload]
    password_file.unlink()
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip() or initdb.stdout.strip()}",
                    pytrace=False)
    cluster = Cluster(root, bin_dir, 0, password, run_as, env)
    errors = []
    for _ in range(5):  # another process may take the free port between the probe and the start
        cluster.port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB")
        started = cluster.pg_ctl("-l", str(root / "server.log"), "-o", options, "-w", "-t", "60", "start",
                                 check=False)
        if started.returncode == 0:
            return cluster
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        errors.append(f"{started.stderr.strip()} {log.strip()[-600:]}")
    shutil.rmtree(root, ignore_errors=True)
    pytest.fail("PostgreSQL did not start: " + " | ".join(errors), pytrace=False)


@dataclass
class Backend:
    """One test's database, on SQLite or PostgreSQL: `target` is what the service config's `database`
    says; `open()` is one more node (a Database of its own) on the same data."""

    name: str  # sqlite, postgresql
    target: str  # "file" (in `directory`), or a postgresql:// URL
    directory: Path
    password: str | None = None
    opened: list[Database] = field(default_factory=list)

    def open(self) -> Database:
        database = Database.connect(self.target, self.directory)
        self.opened.append(database)
        return database
