"""An independent ONVIF client, the npm `onvif` package (node/read_device.js), reads the simulator's devices.

`make env` installs it (npm ci in tests/onvif/node); a missing install fails here, loudly."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.onvif.conftest import PASSWORD, USER

NODE_DIR = Path(__file__).parent / "node"


async def read_device(port: int, *credentials: str) -> tuple[int, str, str]:
    node = shutil.which("node")
    assert node is not None, "node is missing: run `make env` (apt: nodejs, npm)"
    assert (NODE_DIR / "node_modules" / "onvif").is_dir(), \
        f"the npm onvif package is missing: run `make env` (npm ci --prefix {NODE_DIR})"
    process = await asyncio.create_subprocess_exec(node, str(NODE_DIR / "read_device.js"), "127.0.0.1", str(port),
                                                   *credentials, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


@pytest.mark.peer
async def test_npm_onvif_reads_information_profiles_and_stream_uris(onvif_sim):
    code, out, err = await read_device(onvif_sim.onvif.device("cam1").http_port)
    assert code == 0, err
    device = json.loads(out)
    assert device["info"]["manufacturer"] == "OpticLink" and device["info"]["hardwareId"] == "OpticLink-Sim"
    assert [(p["name"], p["width"], p["height"], p["uri"]) for p in device["profiles"]] == [
        ("MainStream", 480, 270, onvif_sim.url("cam1")), ("SubStream", 320, 180, onvif_sim.url("cam1", sub=True))]


@pytest.mark.peer
async def test_npm_onvif_authenticates_with_a_password_digest_and_is_refused_a_wrong_one(onvif_sim):
    port = onvif_sim.onvif.device("cam2").http_port
    code, out, err = await read_device(port, USER, PASSWORD)
    assert code == 0, err
    assert [p["uri"] for p in json.loads(out)["profiles"]] == [onvif_sim.url("cam2")]
    code, out, err = await read_device(port, USER, "wrong")
    assert code == 1 and "Sender not Authorized" in err
