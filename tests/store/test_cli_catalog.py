"""The command line's user and camera commands work on the catalog the config names: the SQLite file
in its data_dir, or the PostgreSQL database the service uses (never a stray SQLite file beside it)."""

import os
import subprocess
import sys

import pytest

from opticlink.store.cameras import CameraStore

OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")


@pytest.mark.slow  # two command-line processes
def test_user_add_and_cameras_export_use_the_configured_database(backend, tmp_path):
    backend.directory.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "cameras.yaml"
    config.write_text(f"data_dir: {backend.directory}\ndatabase: \"{backend.target}\"\ncameras: []\n")
    done = subprocess.run([OPTICLINK, "user", "--config", str(config), "add", "ada", "--role", "admin"],
                          input="a long enough password\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    database = backend.open()
    assert [user.name for user in database.users()] == ["ada"]
    assert (backend.directory / "opticlink.db").exists() == (backend.name == "sqlite")
    CameraStore(database).put("porch", {"id": "porch", "name": "Porch", "url": "rtsp://127.0.0.1:9/porch"}, True, 0.0)
    exported = subprocess.run([OPTICLINK, "cameras", "export", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert "porch" in exported.stdout
    if backend.password:
        assert backend.password not in done.stdout + done.stderr + exported.stdout + exported.stderr
