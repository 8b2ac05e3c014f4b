"""A real Prometheus (Debian's `prometheus`) scrapes the service's /metrics with a bearer token; the
README's example alert rules pass `promtool check rules`."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.sim.faults import Faults
from tests.auth.helpers import credentials
from tests.conftest import small_camera

README = Path(__file__).parents[2] / "README.md"
DEADLINE_S = 60.0  # Prometheus starts, scrapes each second, and the skew settles: seconds, on a loaded machine



def _installed(tool: str) -> str:
    """The tool's path; a missing peer fails the test (never a silent skip): `make env` installs it."""
    path = shutil.which(tool)
    assert path is not None, f"Debian's prometheus package ({tool}) is missing: run `make env`"
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path: Path, target: str, token: str) -> Path:
    secret = tmp_path / "token"
    secret.write_text(token)
    secret.chmod(0o600)  # the token in a file of its own, not in the configuration
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: opticlink
    authorization:
      type: Bearer
      credentials_file: {secret}
    static_configs:
      - targets: ["{target}"]
""")
    return config


async def _query(client: httpx.AsyncClient, expression: str) -> list[dict]:
    response = await client.get("/api/v1/query", params={"query": expression})
    response.raise_for_status()
    return response.json()["data"]["result"]


@pytest.mark.slow
@pytest.mark.parametrize("simulator", [[small_camera("cam1", faults=Faults(audio_skew_ppm=300, seed=3))]],
                         indirect=True)
async def test_prometheus_scrapes_a_cameras_clock_skew(simulator, tmp_path):
    config = ServiceConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data", record=True,
                           cameras=[CameraConfig(id="door", url=simulator.url("cam1"), talkback=False)])
    async with running(config) as (service, base):
        port = _free_port()
        scrape = _config(tmp_path, base.removeprefix("http://"), credentials(service).token)
        log = (tmp_path / "prometheus.log").open("wb")  # a file, not a pipe nobody reads while it runs
        prometheus = subprocess.Popen(
            [_installed("prometheus"), f"--config.file={scrape}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], stdout=log, stderr=log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
                deadline, last, seen = time.monotonic() + DEADLINE_S, None, []
                while time.monotonic() < deadline:
                    assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                    with_skew: list[dict] = []
                    try:
                        with_skew = await _query(client, 'opticlink_sync_skew_ppm{camera="door",track="audio"}')
                        last = await _query(client, 'up{job="opticlink"}')
                    except httpx.HTTPError:
                        pass  # not listening yet
                    if with_skew:
                        seen.append(float(with_skew[0]["value"][1]))
                        # the first Sender Reports give a coarse figure: it settles within seconds
                        if abs(seen[-1] - 300) < 60:
                            break
                    await asyncio.sleep(0.5)
                assert seen and abs(seen[-1] - 300) < 60, f"skews scraped {seen[-5:]}, up {last}"
                assert last and last[0]["value"][1] == "1"  # the bearer token was taken
                connected = await _query(client, 'opticlink_camera_connected{camera="door"}')
                assert connected[0]["value"][1] == "1"
                assert await _query(client, 'opticlink_rtp_packets_expected_total{camera="door",track="video"} > 0')
                assert await _query(client, 'opticlink_recording_segments_total{camera="door"}')  # recorded
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(10)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()
            log.close()


def test_the_readmes_alert_rules_are_valid(tmp_path):
    promtool = _installed("promtool")
    text = README.read_text()
    block = re.search(r"```yaml\n(groups:\n.*?)```", text, re.S)
    assert block is not None, "the README's Metrics section has a `groups:` YAML block of alert rules"
    rules = tmp_path / "rules.yml"
    rules.write_text(block.group(1))
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert all(name in block.group(1) for name in ("CameraOffline", "ClockSkew", "RecordingGap"))
