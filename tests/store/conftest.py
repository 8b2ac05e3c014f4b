"""The database backends the store's tests run on: SQLite (a file) and a real PostgreSQL.

PostgreSQL is Debian's server (`make system` installs the `postgresql` package): one throwaway
cluster per test session, made with `initdb` in a temporary folder and started on a free loopback
port (127.0.0.1 only; its Unix socket in that folder too), as `nobody` when the tests run as root
(`initdb` refuses root); a fresh database per test. Without the server's binaries the PostgreSQL
tests fail with what to install: they never skip. They are marked `peer` (an independent server), so
`make check` leaves them out and `make test` runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opticlink.store import Database

from .backends import Backend, Cluster, start_cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


# the PostgreSQL cases share one cluster (the session fixture above): one xdist process runs them all
BACKENDS = ["sqlite", pytest.param("postgresql", marks=[pytest.mark.peer, pytest.mark.xdist_group("postgres_cluster")])]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        backend = Backend("sqlite", "file", tmp_path / "data")
        yield backend
        for database in backend.opened:
            database.close()
        return
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    name, url = cluster.create_database()
    backend = Backend("postgresql", url, tmp_path, password=cluster.password)
    try:
        yield backend
    finally:
        for database in backend.opened:
            database.close()
        cluster.drop_database(name)


@pytest.fixture
def database(backend: Backend) -> Database:
    return backend.open()
