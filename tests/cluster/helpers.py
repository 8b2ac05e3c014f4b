"""Running `opticlink serve` as its own process (as a user would) and watching its cameras over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import websockets

from opticlink.store import Database
from opticlink.store.leases import Leases
from tests.auth.helpers import Credentials

OPTICLINK = os.path.join(os.path.dirname(sys.executable), "opticlink")


def write_config(path: Path, urls: dict[str, str], *extra: str) -> Path:
    """A cameras.yaml with `urls` (id → RTSP URL) and more top-level lines."""
    cameras = "".join(f"  - id: {name}\n    url: {url}\n    talkback: false\n" for name, url in urls.items())
    path.write_text("\n".join(extra) + f"\ncameras:\n{cameras}")
    return path


@contextlib.asynccontextmanager
async def serve(config: Path, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`opticlink serve CONFIG ARGS`; yields the process and the address its first line prints. Stopped
    with SIGTERM (as a service manager does) when the block ends."""
    proc = await asyncio.create_subprocess_exec(OPTICLINK, "serve", str(config), "--port", "0", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        found = re.search(r"https?://\S+", line)
        assert found is not None, line
        yield proc, found.group(0)
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def frames(base: str, camera: str, creds: Credentials, count: int = 5, *, within: float = 20.0,
                 path: str = "live") -> float:
    """Seconds until the camera's WebSocket gave `count` binary frames (reconnecting while it refuses,
    as the player does); AssertionError after `within`."""
    start = time.monotonic()
    url = f"ws{base[4:]}/api/cameras/{camera}/{path}"
    last: object = None
    while time.monotonic() - start < within:
        try:
            async with websockets.connect(url, additional_headers=creds.bearer, max_size=None, open_timeout=3,
                                          close_timeout=0.5) as socket:
                got = 0
                while got < count:
                    message = await asyncio.wait_for(socket.recv(), 3)
                    got += isinstance(message, bytes)
                return time.monotonic() - start
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            last = exc
            await asyncio.sleep(0.2)
    raise AssertionError(f"no frames of {camera} within {within:.0f} s: {last!r}")


async def listing(base: str, creds: Credentials) -> list[dict]:
    async with httpx.AsyncClient(base_url=base, headers=creds.bearer, timeout=10) as client:
        answer = await client.get("/api/cameras")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def until(check, within: float, what: str, step: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll `check()` (sync or async) until it returns something truthy; that value."""
    start = time.monotonic()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(step)


def owners(database: Database) -> dict[str, str]:
    """camera → node holding its lease now."""
    return {camera: lease.node for camera, lease in Leases(database, "observer").owners().items()}


def worker_pid(supervisor: int, index: int) -> int:
    """The pid of `serve --workers`'s worker `index` (a child of the supervisor)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    for child in children:
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"--worker" in argv and argv[argv.index(b"--worker") + 1] == str(index).encode():
            return int(child)
    raise AssertionError(f"no worker {index} among {children}")
