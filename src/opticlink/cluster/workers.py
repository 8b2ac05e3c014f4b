"""`opticlink serve --workers N`: a supervisor and N worker processes sharing one listening port.

The supervisor binds the port once and hands the socket to each worker (`pass_fds`, as uvicorn's
and gunicorn's supervisors do): the kernel spreads connections over them, whichever is free. Each
worker is a node of the catalog (`node`: the machine's name and the port, then `/N`), so leases
spread the cameras over the workers and a request for a camera another worker runs is forwarded to
it (`proxy`). A worker that exits without being asked (`kill -9`, a crash) is started again at once,
with the same index and node id; the supervisor, which knows it is gone, releases its leases at
once (`release_worker`), so the live workers take its cameras at their next step (a third of the TTL
at most) rather than waiting for the new process to import and start; the fair share gives the new
worker its part back once it runs. One that keeps dying is started again after a growing pause
(`RestartPolicy`). SIGTERM or SIGINT to the
supervisor stops every worker with SIGTERM (each releases its leases and closes its recordings),
then SIGKILL after `STOP_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from opticlink.store import Database
from opticlink.store.leases import Leases
from opticlink.store.nodes import Nodes

log = logging.getLogger(__name__)
STOP_GRACE_S = 20.0  # a worker stopping cleanly has this long before it is killed
PARENT_CHECK_S = 1.0  # a worker checks this often that its supervisor still lives


@dataclass(slots=True)
class RestartPolicy:
    """How long to wait before starting a worker again (sans-IO: times passed in, seconds). A worker
    that ran at least `healthy_s` is started again at once; each quick death doubles the pause, from
    `first_s` up to `max_s`."""

    healthy_s: float = 10.0
    first_s: float = 0.5
    max_s: float = 10.0
    quick_deaths: int = 0

    def delay(self, started: float, ended: float) -> float:
        if ended - started >= self.healthy_s:
            self.quick_deaths = 0
            return 0.0
        self.quick_deaths += 1
        return 0.0 if self.quick_deaths == 1 else min(self.max_s, self.first_s * 2 ** (self.quick_deaths - 2))


class Supervisor:
    """Runs `count` workers (`command(index, fd)` is a worker's argv) on `sock` until `stop()`."""

    def __init__(self, sock: socket.socket, count: int, command: Callable[[int, int], Sequence[str]],
                 on_death: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.sock = sock
        self.count = count
        self.command = command
        self.on_death = on_death  # a worker died unasked: free its cameras (`release_worker`)
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0
        self._stopping = asyncio.Event()

    async def _keep(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        policy = RestartPolicy()
        fd = self.sock.fileno()
        while not self._stopping.is_set():
            started = loop.time()
            process = await asyncio.create_subprocess_exec(*self.command(index, fd), pass_fds=(fd,))
            self.processes[index] = process
            code = await process.wait()
            if self._stopping.is_set():
                return
            pause = policy.delay(started, loop.time())
            self.restarts += 1
            if self.on_death is not None:
                try:
                    await self.on_death(index)
                except Exception as exc:
                    log.warning("worker %d: its leases could not be released (%s): they expire", index, exc)
            log.warning("worker %d (pid %d) exited with %s; starting it again%s", index, process.pid, code,
                        f" in {pause:.1f} s" if pause else "")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._stopping.wait()

    async def run(self, seconds: float | None = None) -> None:
        """Start the workers and keep them running until SIGTERM/SIGINT, `stop()`, or `seconds`."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        keepers = [asyncio.ensure_future(self._keep(i)) for i in range(self.count)]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stopping.wait()
        finally:
            self._stopping.set()
            await self._stop_all()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    def stop(self) -> None:
        self._stopping.set()

    async def _stop_all(self) -> None:
        alive = [p for p in self.processes.values() if p.returncode is None]
        log.info("stopping %d workers", len(alive))
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await asyncio.gather(*(p.wait() for p in alive))
        except TimeoutError:
            for process in alive:
                if process.returncode is None:
                    log.warning("worker pid %d did not stop in %.0f s: killed", process.pid, STOP_GRACE_S)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(p.wait() for p in alive))


def release_worker(database: Database, node: str) -> int:
    """A worker of this machine is dead (its process is gone: it cannot be acting as an owner any more):
    its leases and its node row go at once, so the live workers take its cameras at their next step
    (warm, with nothing to import) instead of after the TTL or the restarted worker's start. How many."""
    released = Leases(database, node).release_all()
    Nodes(database).leave(node)
    return released


def worker_command(index: int, fd: int, config: str, overrides: Sequence[str]) -> list[str]:
    """A worker's argv: this Python, `opticlink serve CONFIG --worker INDEX --listen-fd FD` + overrides."""
    return [sys.executable, "-m", "opticlink", "serve", config, "--worker", str(index), "--listen-fd", str(fd),
            *overrides]


def die_with_parent() -> None:
    """In a worker: be killed (SIGKILL) when the supervisor dies, as one service killed with -9 would be:
    no worker outlives it (Linux's PR_SET_PDEATHSIG; elsewhere `watch_parent` does it within a second)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def watch_parent(parent: int) -> None:
    """In a worker: die at once when the supervisor `parent` is gone (it was killed: so are we)."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)
    log.warning("the supervisor (pid %d) is gone: exiting", parent)
    os.kill(os.getpid(), signal.SIGKILL)
