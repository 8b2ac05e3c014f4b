"""Shared fixtures: small simulated cameras and a simulator on an ephemeral loopback port."""

from __future__ import annotations

import fcntl
import os
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from opticlink.sim.faults import Faults
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer
from opticlink.sim.spec import CameraSpec

# The fuzz tests judge what parsers do with any input, not how fast: no per-example deadline (200 ms by
# default), which a test process sharing two cores with others overran now and then
settings.register_profile("opticlink", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("opticlink")


def small_camera(name: str = "cam1", **options) -> CameraSpec:
    """A 320x180 camera: cheap to stream, real H.264 and audio."""
    options.setdefault("width", 320)
    options.setdefault("height", 180)
    options.setdefault("bitrate", 300_000)
    return camera(name, **options)


def shared_file(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A file made once per run, by whichever test process asks first (the others wait for it): a
    function fixture returning it leaves its tests free to run in any process, as a module fixture that
    made it would not (`shared_fixture_group`)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, which every xdist process's own folder is in
    folder = root / "shared"
    folder.mkdir(exist_ok=True)
    path = folder / name
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            part = folder / f"part-{name}"  # the same suffix: tools choose the format by it
            make(part)
            part.rename(path)
    return path


@pytest.fixture
async def simulator(request):
    """A started simulator; parametrize indirectly with a list of CameraSpec, else one clean camera."""
    cameras = getattr(request, "param", None) or [small_camera()]
    server = SimulatorServer(cameras, port=0)
    await server.start()
    yield server
    await server.close()


BROWSER_WORDS = {"browser_page", "async_playwright", "launch"}


def shared_fixture_group(item: pytest.Item) -> str | None:
    """The process a test must share with others: tests using one module or session fixture of ours
    (a recording, a PostgreSQL cluster) run in one xdist process (`--dist loadgroup`), so it is made once."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    group = None
    for name in info.names_closure:
        for fixturedef in info.name2fixturedefs.get(name, ()):
            if not fixturedef.baseid.startswith("tests"):
                continue  # a plugin's
            if fixturedef.scope == "session":
                return name
            if fixturedef.scope in ("module", "package"):
                group = fixturedef.baseid
    return group


def pytest_itemcollected(item: pytest.Item) -> None:
    """Tests sharing a fixture that outlives them are grouped into one process (marked here, as each is
    collected: xdist reads the groups in its own `pytest_collection_modifyitems`)."""
    group = shared_fixture_group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium are marked `browser` (for `make check`, which leaves them out). The long
    ones go first (a group sharing a fixture, then those marked `slow`), so that with xdist they do not
    start last and run on alone while the other processes have finished."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("xdist_group") else 1 if item.get_closest_marker("slow")
               else 2)
    for item in items:
        code = getattr(getattr(item, "function", None), "__code__", None)
        if code is not None and _names_used(code) & BROWSER_WORDS:
            item.add_marker(pytest.mark.browser)


def _names_used(code: types.CodeType) -> set[str]:
    """The global and attribute names a function's code uses, its nested functions' included (reading the
    compiled code: `inspect.getsource` of every test took a second in each of the suite's processes)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


__all__ = ["Faults", "small_camera"]
