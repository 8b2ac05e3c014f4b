"""Running the service under uvicorn on a socket we open ourselves (TCP_NODELAY, port 0 allowed)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator

import uvicorn

from opticlink.api.app import create_app
from opticlink.api.config import ServiceConfig
from opticlink.api.service import Service
from opticlink.auth.certificate import TlsFiles, self_signed, user_certificate, wants_tls
from opticlink.cluster.node import NodeIdentity

SEND_BUFFER = 256 * 1024  # bytes the kernel may hold for one viewer; beyond it the hub decides what to drop


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with Nagle off and a bounded send buffer; accepted connections
    inherit both on Linux. Without the bound the kernel would queue seconds of video for a
    stalled viewer before the hub could notice and skip it to the next keyframe."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def tls_files(config: ServiceConfig) -> TlsFiles | None:
    """The certificate to serve HTTPS with, or None for HTTP: the user's, else our self-signed one."""
    if not wants_tls(config.tls, config.host):
        return None
    if config.tls_cert is not None and config.tls_key is not None:
        return user_certificate(config.tls_cert, config.tls_key)
    return self_signed(config.data_dir, config.host, extra=config.hosts)  # also the names it is reached by


def advertised_host(host: str) -> str:
    """The name other nodes reach this one by: the listen address, or this machine's name for a wildcard."""
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def running(config: ServiceConfig, tls: TlsFiles | None = None, *, node: str | None = None,
                  sock: socket.socket | None = None) -> AsyncIterator[tuple[Service, str]]:
    """Start the service and its web server; yields the service and its base URL.

    HTTPS with `tls`, else with `tls_files(config)` (None: HTTP on loopback unless the config says `tls: true`).
    `sock`: a listening socket to serve (a worker's, shared with its siblings), else one is opened.
    `node`: run as that node of the catalog (`opticlink.cluster`), reached by the other nodes on an
    internal listener of its own (the listen address, an ephemeral port), since a port shared by
    workers cannot pick one of them.
    The server handles SIGINT and SIGTERM by shutting down; `wait_stopped(service)` returns then."""
    tls = tls or tls_files(config)
    sockets = [sock or listening_socket(config.host, config.port)]
    identity = None
    if node is not None:
        sockets.append(listening_socket(config.host, 0))
        address = f"{'https' if tls else 'http'}://{advertised_host(config.host)}:{sockets[1].getsockname()[1]}"
        identity = NodeIdentity(node, address)
    service = Service(config, node=identity)
    await service.start()
    sock = sockets[0]
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", lifespan="off",
                                           ws="websockets-sansio", ws_ping_interval=20.0,
                                           ws_max_size=1 << 20,
                                           # video and G.711 do not compress: deflate would only cost
                                           # every viewer CPU and latency
                                           ws_per_message_deflate=False,
                                           ssl_certfile=tls and str(tls.cert), ssl_keyfile=tls and str(tls.key)))
    kept = {}
    if identity is not None and threading.current_thread() is threading.main_thread():
        # uvicorn re-raises SIGTERM/SIGINT once it has shut down, to the handler it found: a node must live
        # on to stop its cameras (recordings closed) and release its leases, so it finds one that returns
        kept = {signum: signal.signal(signum, _shut_down) for signum in (signal.SIGTERM, signal.SIGINT)}
    task = asyncio.create_task(server.serve(sockets=sockets))
    service.server_task = task
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        host = f"[{config.host}]" if ":" in config.host else config.host
        yield service, f"{'https' if tls else 'http'}://{host}:{port}"
    finally:
        await service.stop()  # viewers are released first, so their handlers end on their own
        await asyncio.sleep(0.05)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        for each in sockets:
            each.close()
        for signum, handler in kept.items():
            signal.signal(signum, handler)


def _shut_down(signum: int, frame: object) -> None:
    """A stop signal, re-raised by uvicorn after it stopped serving: the service stops next (`running`)."""


async def wait_stopped(service: Service, seconds: float | None = None) -> None:
    """Until the web server stops (a signal) or `seconds` pass."""
    task = service.server_task
    assert task is not None
    await asyncio.wait({task}, timeout=seconds)
