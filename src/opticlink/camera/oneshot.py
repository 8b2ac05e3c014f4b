"""A camera session played once for a while: what the probe, the capture command and the API's
connection test share (start it, wait until it plays, play on for some seconds, stop it however it
ended)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from opticlink.camera.session import CameraSession
from opticlink.errors import RtspError


class OneShot:
    """A session of `reconnect=False` running as a task; see `played`."""

    def __init__(self, session: CameraSession, task: asyncio.Task[None]) -> None:
        self.session = session
        self.task = task
        self.started = asyncio.get_running_loop().time()  # when it began to play (its start until then)

    async def play(self, seconds: float, on_progress: Callable[[float], None] | None = None,
                   every: float = 0.5) -> None:
        """Wait until the camera plays, then play on for `seconds` (calling `on_progress(elapsed)`
        each `every` seconds) or until the session ends; its failure (RtspError) is raised."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_task(self.session.wait_playing())
        await asyncio.wait({self.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.task.done():
            self.task.result()
        self.started = loop.time()
        while (elapsed := loop.time() - self.started) < seconds and not self.task.done():
            if on_progress is not None:
                on_progress(elapsed)
            await asyncio.wait({self.task}, timeout=min(every, seconds - elapsed))
        if self.task.done():
            self.task.result()


@contextlib.asynccontextmanager
async def played(session: CameraSession) -> AsyncIterator[OneShot]:
    """Run `session` for the block; it is stopped when the block ends, however it ends (read what
    the connection knows inside the block: it is gone after)."""
    task = asyncio.get_running_loop().create_task(session.run())
    try:
        yield OneShot(session, task)
    finally:
        await session.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RtspError):
            await task
