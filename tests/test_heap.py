"""`heap.trim`: memory a worker thread freed goes back to the operating system."""

import asyncio
import os
import sys
import threading

import pytest

from opticlink import heap


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_memory_a_thread_freed_goes_back_to_the_system_when_trimmed():
    kept: list[bytearray] = []

    def churn() -> None:  # 60 MB in the thread's own arena, one block in a thousand kept: the rest is freed
        blocks = [bytearray(1024) for _ in range(60_000)]
        kept.extend(blocks[::1000])

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = rss_mb()
    assert heap.trim()
    assert before - rss_mb() > 30, (before, rss_mb())


async def test_the_service_trims_the_heap_while_it_runs_and_stops_doing_so_when_stopped(monkeypatch):
    from opticlink.api.config import ServiceConfig
    from opticlink.api.service import Service

    calls = []
    monkeypatch.setattr(heap, "TRIM_INTERVAL_S", 0.05)
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1) or True)
    service = Service(ServiceConfig())
    await service.start()
    await asyncio.sleep(0.5)
    await service.stop()
    trimmed = len(calls)
    await asyncio.sleep(0.2)
    assert trimmed >= 3 and len(calls) == trimmed
