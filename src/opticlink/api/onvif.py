"""`POST /api/onvif/discover` and `POST /api/onvif/import`: finding cameras and reading what they stream over
ONVIF, for the admin's camera panel (admins only, audited).

Discovery sends a WS-Discovery Probe: to the local network's multicast group, or to one `host:port` given
(a unicast responder, such as the simulator's). Import asks a camera's device service for its streams and
proposes the fields of a camera to add; the password is never sent back (the page keeps what was typed).
Each is bounded in time, and at most `MAX_AT_ONCE` of each run at once (429 beyond).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from opticlink.auth.redact import install_log_redaction, redact
from opticlink.camera import discovery
from opticlink.camera.onvif import OnvifImportError, import_camera

if TYPE_CHECKING:
    from opticlink.api.service import Service

MAX_AT_ONCE = 2  # discoveries at once, and imports at once; more get 429
DISCOVER_TIMEOUT_S = 2.0  # how long answers to a Probe are awaited (default)
MAX_DISCOVER_TIMEOUT_S = 5.0
IMPORT_TIMEOUT_S = 10.0  # the whole import, whatever the camera does
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")  # a DNS name (IP literals are checked apart)


class DiscoverRequest(BaseModel):
    """Where to send the Probe: `host:port` (unicast), or nothing for the local network's multicast group."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, max_length=300)
    timeout: float = Field(DISCOVER_TIMEOUT_S, ge=0.2, le=MAX_DISCOVER_TIMEOUT_S)


class ImportRequest(BaseModel):
    """A camera's ONVIF device service: host, port, and its credentials if it needs them."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(80, ge=1, le=65535)
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=200)


def check_host(host: str) -> str | None:
    """Why `host` is not a host name or IP address, if so."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    if not HOST.match(host) or ".." in host:
        return "a host name or IP address, e.g. 192.0.2.10"
    return None


def parse_address(value: str) -> tuple[str, int]:
    """(host, port) from `host:port` (`[v6]:port` too); ValueError in words otherwise."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("address: host:port, e.g. 192.0.2.10:3702")
    if problem := check_host(host):
        raise ValueError(f"address: {problem}")
    return host, int(port)


def device_entry(device: discovery.DiscoveredDevice) -> dict[str, Any]:
    """A discovered device as the page shows it, with the host and port to import it from (its first
    http address)."""
    from urllib.parse import urlsplit

    host = port = None
    for xaddr in device.xaddrs:
        try:
            parts = urlsplit(xaddr)
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if host:
            break
    return {"name": device.name, "hardware": device.hardware, "endpoint": device.endpoint,
            "xaddrs": list(device.xaddrs), "host": host, "port": port}


def suggest_id(name: str, fallback: str, taken: Callable[[str], bool]) -> str:
    """An id for a new camera from its name (letters, digits, - and _), not one `taken`."""
    base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:56] or fallback[:56] or "camera"
    candidate, n = base, 2
    while taken(candidate) and n < 1000:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def router(service: Service, caller: Callable[..., Any]) -> APIRouter:
    """The ONVIF routes; `caller`: the dependency that gives the logged-in user (admins only here)."""
    routes = APIRouter()
    discoveries = asyncio.Semaphore(MAX_AT_ONCE)
    imports = asyncio.Semaphore(MAX_AT_ONCE)

    def admin(who: Any = Depends(caller)) -> Any:  # noqa: B008 (FastAPI's way)
        if not who.is_admin:
            raise HTTPException(403, "admins only")
        return who

    def audit(action: str, who: Any, request: Request, detail: str) -> None:
        address = request.client.host if request.client is not None else "unknown"
        service.gate.audit.record(action, user=who.name, address=address, camera=None, detail=detail[:400])

    def busy(what: str) -> HTTPException:
        return HTTPException(429, f"{MAX_AT_ONCE} {what} are running: try again in a few seconds",
                             headers={"Retry-After": "5"})

    @routes.post("/api/onvif/discover")
    async def discover(change: DiscoverRequest, request: Request,
                       who: Any = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        """Send a WS-Discovery Probe and list the ONVIF cameras that answer within `timeout` s: `devices`
        (name, hardware, xaddrs, and the host and port to import each from)."""
        if change.address:
            try:
                address = parse_address(change.address)
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
        else:
            address = discovery.MULTICAST_ADDRESS  # the local network
        if discoveries.locked():
            raise busy("discoveries")
        async with discoveries:
            try:
                found = await asyncio.wait_for(discovery.discover(address, change.timeout), change.timeout + 2.0)
            except (OSError, TimeoutError) as exc:
                audit("onvif_discover", who, request, f"{address[0]}:{address[1]}: failed: {exc}")
                raise HTTPException(502, f"no probe could be sent to {address[0]}:{address[1]}: {exc}") from None
        devices = [device_entry(d) for d in found]
        audit("onvif_discover", who, request, f"{address[0]}:{address[1]}: {len(devices)} devices")
        return {"address": f"{address[0]}:{address[1]}", "multicast": not change.address, "devices": devices}

    @routes.post("/api/onvif/import")
    async def import_(change: ImportRequest, request: Request,
                      who: Any = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        """Ask the camera at host:port (its ONVIF device service) what it streams: `camera` (the fields of
        a camera to add, without the password), `warnings`, `profiles` and what it is. 422 with the reason
        in words when it cannot be imported (a wrong password: "the camera refused the user name or
        password")."""
        host = change.host.strip("[]")
        if problem := check_host(host):
            raise HTTPException(422, f"host: {problem}")
        if imports.locked():
            raise busy("imports")
        if change.password:
            install_log_redaction([change.password])
        secrets = [change.password] if change.password else []
        async with imports:
            try:
                camera = await import_camera(host, change.port, change.username or None, change.password or None,
                                             timeout=IMPORT_TIMEOUT_S)
                config = camera.camera_config()
            except OnvifImportError as exc:
                reason = redact(str(exc), secrets)
                audit("onvif_import", who, request, f"{host}:{change.port}: {reason}")
                raise HTTPException(422, reason) from None
        config.pop("password", None)  # write-only: the page keeps what the user typed
        config["id"] = suggest_id(camera.name, str(config["id"]), lambda c: service.camera_config(c) is not None)
        for key in ("url", "substream_url"):
            if config.get(key):
                config[key] = redact(str(config[key]), secrets)
        audit("onvif_import", who, request, f"{host}:{change.port}: {camera.name}, "
                                            f"{len(camera.profiles)} profiles")
        return {
            "camera": config,
            "name": camera.name, "manufacturer": camera.manufacturer, "model": camera.model,
            "firmware": camera.firmware,
            "audio": camera.audio, "talkback": camera.talkback, "backchannel_codec": camera.backchannel_codec,
            "clock_offset_s": camera.clock_offset_s,
            "profiles": [{"token": p.token, "name": p.name, "width": p.width, "height": p.height,
                          "encoding": p.encoding, "uri": redact(p.uri, secrets) if p.uri else None}
                         for p in camera.profiles],
            "warnings": [redact(w, secrets) for w in camera.warnings],
        }

    return routes
