"""Forwarding a camera's routes and streams to the node that owns it, and the hop's authentication.

Every node lists every camera; a camera runs on one (`node`). A request for a camera another node
runs (`/api/cameras/ID` and everything under it: live and playback WebSockets, diagnostics, talk's
audio test, settings, timeline, export) is forwarded there by `CameraRouter`, so the browser never
knows which node answered. The front node has authenticated the user already (`AccessControl`); the
hop carries who they are, signed:

    x-opticlink-hop: <unix seconds>.<user id>.<HMAC-SHA256(node key, "t.user.METHOD.path")>

with the catalog's node key (`store.nodes.node_secret`: in the database, so only what reads the catalog
can sign) and the browser's address (`x-opticlink-hop-client`, for the owner's audit log). The owner
checks the signature with `hmac.compare_digest` and a clock window (`HOP_WINDOW_S`), loads the user
from the catalog (a removed user or a changed role counts at once) and serves the request as theirs;
a hop header that does not verify is refused outright, whatever cookie comes with it. A hop is never
forwarded again (no loops): a camera the owner does not run (it just lost it) answers 503, and the
browser's player reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

HOP = "x-opticlink-hop"
HOP_CLIENT = "x-opticlink-hop-client"
HOP_SCOPE = "opticlink.hop"  # scope key: this request came from another node
HOP_WINDOW_S = 300.0  # a signature older or newer than this (clocks of two machines) is refused
MAX_BODY = 1 << 20  # bytes of a forwarded request body (settings, an audio test: small)
MAX_MESSAGE = 16 << 20  # bytes of one WebSocket message from the owner (a keyframe)
CONNECT_TIMEOUT_S = 5.0
# request headers a hop carries over: never the browser's credentials (the hop carries the user)
FORWARDED = frozenset({"accept", "content-type", "range", "if-range", "user-agent", "accept-language"})
NOT_BACK = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "server", "date"})


@dataclass(frozen=True, slots=True)
class Hop:
    user_id: int
    client: str | None


def _mac(secret: str, stamp: str, user_id: int, method: str, path: str) -> str:
    message = f"{stamp}.{user_id}.{method.upper()}.{path}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, user_id: int, method: str, path: str, *, now: float | None = None) -> str:
    """The `x-opticlink-hop` value for a request of `user_id` (`method` GET for a WebSocket)."""
    stamp = str(int(time.time() if now is None else now))
    return f"{stamp}.{user_id}.{_mac(secret, stamp, user_id, method, path)}"


def verify(secret: str | None, value: str, method: str, path: str, *, now: float | None = None) -> int | None:
    """The user id a hop header speaks for, None if it does not verify (wrong key, altered, too old)."""
    if not secret:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    stamp, user, mac = parts
    if abs((time.time() if now is None else now) - int(stamp)) > HOP_WINDOW_S:
        return None
    expected = _mac(secret, stamp, int(user), method, path)
    return int(user) if hmac.compare_digest(expected.encode(), mac.encode()) else None


def camera_of(path: str) -> str | None:
    """The camera a path is about: `/api/cameras/ID` and below (not `/api/cameras/probe`)."""
    parts = path.split("/")
    if len(parts) < 4 or parts[1] != "api" or parts[2] != "cameras" or not parts[3] or parts[3] == "probe":
        return None
    return unquote(parts[3])


class Owners:
    """What the router asks the service: is the camera here, and else where is its owner."""

    local: Callable[[str], bool]  # the camera runs on this node
    known: Callable[[str], bool]  # an enabled camera of the catalog
    owner: Callable[[str], tuple[str, str] | None]  # (node, address) of its owner, as last seen
    secret: str
    node: str

    def __init__(self, *, local: Callable[[str], bool], known: Callable[[str], bool],
                 owner: Callable[[str], tuple[str, str] | None], secret: str, node: str) -> None:
        self.local, self.known, self.owner, self.secret, self.node = local, known, owner, secret, node


async def _refuse(scope: Scope, receive: Receive, send: Send, code: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})  # then closed: a browser shows the code, not a bare 1006
        await send({"type": "websocket.close", "code": 4000 + code, "reason": reason})
        return
    body = json.dumps({"detail": reason}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"2")]})
    await send({"type": "http.response.body", "body": body})


class CameraRouter:
    """ASGI middleware, inside `AccessControl` (the request's user is known): forwards a request for a
    camera another node runs to that node (see the module's docstring)."""

    def __init__(self, app: ASGIApp, owners: Owners, principal_key: str) -> None:
        self.app = app
        self.owners = owners
        self.principal_key = principal_key
        # a node serving HTTPS has a self-signed certificate of its own: the hop is encrypted, not verified
        # (its signature, not a secret, crosses the wire: a replay is bounded by `HOP_WINDOW_S`)
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=None), verify=False,
                                        limits=httpx.Limits(max_connections=200, max_keepalive_connections=20))
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        camera = camera_of(scope["path"]) if scope["type"] in ("http", "websocket") else None
        owners = self.owners
        if camera is None or owners.local(camera) or not owners.known(camera):
            await self.app(scope, receive, send)
            return
        if scope.get(HOP_SCOPE):  # never forwarded twice: the owner just lost it
            await _refuse(scope, receive, send, 503, f"camera {camera[:64]} is moving to another node: try again")
            return
        owner = owners.owner(camera)
        if owner is None or owner[0] == owners.node:
            await _refuse(scope, receive, send, 503, f"camera {camera[:64]} is starting on a node: try again")
            return
        who = scope.get(self.principal_key)
        if who is None:
            await self.app(scope, receive, send)  # the route answers 401
            return
        client = scope.get("client")
        headers = {HOP: sign(owners.secret, who.user_id, "GET" if scope["type"] == "websocket" else scope["method"],
                             scope["path"]),
                   HOP_CLIENT: client[0] if client else "unknown"}
        query = scope.get("query_string", b"").decode("latin-1")
        raw = scope.get("raw_path")
        target = owner[1].rstrip("/") + (raw.decode("latin-1") if raw else scope["path"])
        target += f"?{query}" if query else ""
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, "ws" + target[4:], headers)
        else:
            await self._http(scope, receive, send, target, headers)

    async def _http(self, scope: Scope, receive: Receive, send: Send, target: str, hop: dict[str, str]) -> None:
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await _refuse(scope, receive, send, 413, "request body too large")
                return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        forwarded = {k: v for k, v in headers.items() if k in FORWARDED} | hop
        try:
            request = self.client.build_request(scope["method"], target, headers=forwarded, content=bytes(body))
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.info("forward to %s failed: %s", target.split("/api/")[0], type(exc).__name__)
            await _refuse(scope, receive, send, 503, "the camera's node does not answer: try again")
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.decode("latin-1").lower()
                                    not in NOT_BACK]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, target: str, hop: dict[str, str]) -> None:
        try:
            upstream = await connect(target, additional_headers=hop, max_size=MAX_MESSAGE, compression=None,
                                     open_timeout=CONNECT_TIMEOUT_S, ping_interval=20.0, max_queue=16,
                                     ssl=self.tls if target.startswith("wss:") else None)
        except Exception as exc:
            log.info("forward to %s failed: %s", target.split("/api/")[0], type(exc).__name__)
            await _refuse(scope, receive, send, 503, "the camera's node does not answer: try again")
            return
        message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            await upstream.close()
            return
        await send({"type": "websocket.accept"})

        async def down() -> None:  # owner → browser, one message at a time (the owner's queues decide drops)
            try:
                async for data in upstream:
                    if isinstance(data, bytes):
                        await send({"type": "websocket.send", "bytes": data})
                    else:
                        await send({"type": "websocket.send", "text": data})
            except ConnectionClosed:
                pass
            code = upstream.close_code or 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code if code != 1006 else 1011,
                            "reason": upstream.close_reason or ""})

        async def up() -> None:  # browser → owner (talk)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                await upstream.send(data if data is not None else message.get("text", ""))

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await upstream.close()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def listings(self, cameras: list[str], who_id: int) -> dict[str, dict[str, object]]:
        """The owners' own entries (`GET /api/cameras`, as a hop) of `cameras`, by camera: one request per
        owner node, at once, each within 2 s (an owner that does not answer leaves its cameras out)."""
        by_owner: dict[str, list[str]] = {}
        for camera in cameras:
            owner = self.owners.owner(camera)
            if owner is not None and owner[0] != self.owners.node:
                by_owner.setdefault(owner[1], []).append(camera)

        async def ask(address: str, wanted: list[str]) -> dict[str, dict[str, object]]:
            headers = {HOP: sign(self.owners.secret, who_id, "GET", "/api/cameras")}
            try:
                answer = await self.client.get(f"{address.rstrip('/')}/api/cameras", headers=headers, timeout=2.0)
                entries = answer.json() if answer.status_code == 200 else []
            except (httpx.HTTPError, ValueError):
                return {}
            return {e["id"]: e for e in entries if isinstance(e, dict) and e.get("id") in wanted
                    and e.get("node") is not None}

        found: dict[str, dict[str, object]] = {}
        for part in await asyncio.gather(*(ask(a, w) for a, w in by_owner.items())):
            found.update(part)
        return found

    async def gather(self, method: str, path: str, user_id: int, peers: Mapping[str, str]) -> list[httpx.Response]:
        """`method path` asked of every other live node (`peers`: node → address) as a hop, at once, each
        within 2 s; the answers of those that gave one."""

        async def ask(address: str) -> httpx.Response | None:
            headers = {HOP: sign(self.owners.secret, user_id, method, path.split("?")[0])}
            try:
                return await self.client.request(method, f"{address.rstrip('/')}{path}", headers=headers,
                                                 timeout=2.0)
            except httpx.HTTPError:
                return None

        answers = await asyncio.gather(*(ask(a) for n, a in peers.items() if n != self.owners.node))
        return [a for a in answers if a is not None]

    async def close(self) -> None:
        await self.client.aclose()


def hop_of(headers: Mapping[str, str], secret: str | None, method: str, path: str) -> Hop | bool | None:
    """A request's hop: False when it carries none; None when it carries one that does not verify (refuse
    it); else who it is for."""
    value = headers.get(HOP)
    if value is None:
        return False
    user = verify(secret, value, method, path)
    return None if user is None else Hop(user, headers.get(HOP_CLIENT))
