"""The FastAPI application: player files, camera status, live WebSockets, metrics, login.

Every response carries COOP/COEP headers, so the player page is cross-origin isolated and may
share memory (SharedArrayBuffer) between its Worker and its AudioWorklet.

Access: `AccessControl` (below) stands in front of every route, so a new route cannot be left
open by mistake. It refuses a Host the service is not named by (DNS rebinding), a browser page of
another origin (WebSocket, and any request that changes something), and anyone without a session
cookie or a bearer token, except on `PUBLIC` paths (the health check, login and logout). What a
role may do is checked in the routes (`_admin`) and, for talk, per camera (`Principal.talk_refusal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, quote

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send

from opticlink.api import audio_test, diagnostics, onvif, settings
from opticlink.api.cameras import add_routes as add_camera_routes
from opticlink.api.cameras import describe
from opticlink.api.config import CameraConfig
from opticlink.api.playback import opener, serve_playback, timeline
from opticlink.api.service import Service, _secrets
from opticlink.api.settings import CameraSettings
from opticlink.auth.accounts import principal
from opticlink.auth.gate import Gate, LoginRefused
from opticlink.auth.roles import Principal
from opticlink.auth.sessions import COOKIE
from opticlink.cluster.gather import merge_metrics
from opticlink.cluster.proxy import HOP_SCOPE, CameraRouter, Hop, Owners, hop_of
from opticlink.live.feed import LiveFeed
from opticlink.live.websocket import serve_viewer, talker_name

WEB_DIR = Path(str(resources.files("opticlink") / "web"))
# Tests and benchmarks only, off unless set: a directory of their pages (the repository's `tests/web`)
# served at /static/bench, to signed-in users as the rest of /static (its pages import the player by
# relative URL, `../player.js`), and the routes only they need (`_bench_routes`). Not in the package.
BENCH_ENV = "OPTICLINK_BENCH_DIR"
ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PUBLIC = frozenset({"/healthz", "/login", "/logout"})  # the only paths served without credentials
PAGES = frozenset({"/", "/audit"})  # sent to the login page instead of a 401
CAMERA_PAGES = ("/diagnostics",)  # /cameras/{id}/diagnostics: a 401 whose page goes on to the login page
PRINCIPAL = "opticlink.principal"  # the scope key AccessControl leaves the request's Principal under
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_LOGIN_BODY = 8192  # bytes: a name and a password
MAX_EXPORT_S = 24 * 3600  # the longest export over HTTP
MAX_EXPORTS = 2  # exports running at once


# An open WebSocket is checked again this often: a session that ended (logout, expiry, a changed
# password) or a user removed or given another role stops being served within this time.
RECHECK_S = 30.0


class AccessControl:
    """ASGI middleware: Host, Origin and credentials for every HTTP request and WebSocket.

    A request forwarded by another node of the catalog (`cluster.proxy`: a signed `x-opticlink-hop`
    header, `hop_secret` the catalog's node key) is served as the user it names, with the browser's
    address; one whose signature does not verify is refused, whatever else it carries. A node alone
    (`hop_secret` None) refuses every hop."""

    def __init__(self, app: ASGIApp, gate: Gate, hop_secret: str | None = None) -> None:
        self.app = app
        self.gate = gate
        self.hop_secret = hop_secret

    def _hop_user(self, hop: Hop) -> Principal | None:
        row = self.gate.db.user_by_id(hop.user_id)
        return None if row is None else principal(row, "node")

    def _identify(self, scope: Scope, headers: dict[str, str]) -> tuple[Principal | None, Hop | None, bool]:
        """Who the request is for; the verified hop it came by (if any); False when a hop did not verify.
        Called in a thread: it reads the catalog, and a page's burst of requests (its modules, four
        timelines at once) done on the event loop held up every camera's frames by tens of ms."""
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        hop = hop_of(headers, self.hop_secret, method, scope["path"])
        if hop is None:
            return None, None, False
        if isinstance(hop, Hop):
            who = self._hop_user(hop)
            if who is not None:
                scope[HOP_SCOPE] = True
                if hop.client:
                    scope["client"] = (hop.client[:64], 0)
            return who, hop, True
        return self.gate.identify(headers), None, True

    async def _watched(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                       who: Principal, hop: Hop | None = None) -> None:
        """Serve a WebSocket while the credentials that opened it stay valid; then close it (4401)."""
        served = asyncio.ensure_future(self.app(scope, receive, send))

        async def watch() -> None:
            while True:
                await asyncio.sleep(RECHECK_S)
                if hop is None:
                    now = await asyncio.to_thread(self.gate.identify, headers)
                else:
                    now = await asyncio.to_thread(self._hop_user, hop)
                if now is None or now.user_id != who.user_id or now.role != who.role:
                    with contextlib.suppress(Exception):
                        await send({"type": "websocket.close", "code": 4401,
                                    "reason": "your session ended or your access changed: log in again"})
                    served.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await served
        except asyncio.CancelledError:
            if not watcher.done():
                raise
        finally:
            watcher.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin = headers.get("host"), headers.get("origin")
        policy = self.gate.policy
        # a hop names the owner's internal address (this machine's name, on a wildcard listen address): a
        # signed hop is no browser a rebinding name could have sent, so the Host policy is not its
        signed = isinstance(hop_of(headers, self.hop_secret, "GET" if scope["type"] == "websocket" else scope["method"],
                                scope["path"]), Hop)
        if scope["type"] == "websocket":
            refusal = None
            if not policy.host_allowed(host) and not signed:
                refusal = 4403, "this service is not reached by that host name (add it to hosts: in the config)"
            elif not policy.origin_allowed(origin, host):
                refusal = 4403, "a page of another origin may not open this WebSocket"
            else:
                who, hop, verified = await asyncio.to_thread(self._identify, scope, headers)
                if not verified:
                    refusal = 4401, "a hop from another node that does not verify"
                elif who is None:
                    refusal = 4401, "log in first"
            if refusal is not None:
                # accepted, then closed: a browser shows the code and reason, not a bare 1006
                socket = WebSocket(scope, receive, send)
                await socket.accept()
                await socket.close(code=refusal[0], reason=refusal[1])
                return
            scope[PRINCIPAL] = who
            await self._watched(scope, receive, send, headers, who, hop)
            return
        path, method = scope["path"], scope["method"]
        if not policy.host_allowed(host) and not signed:
            response: Response = JSONResponse({"detail": "this service is not reached by that host name "
                                                         "(add it to hosts: in the config)"}, 421)
        elif method in UNSAFE and not policy.origin_allowed(origin, host):
            response = JSONResponse({"detail": "a page of another origin may not do this"}, 403)
        else:
            who, _, verified = await asyncio.to_thread(self._identify, scope, headers)
            if not verified:
                response = JSONResponse({"detail": "a hop from another node that does not verify"}, 401)
                await response(scope, receive, send)
                return
            if who is not None or path in PUBLIC:
                scope[PRINCIPAL] = who
                await self.app(scope, receive, send)
                return
            if method == "GET" and path in PAGES:
                response = RedirectResponse("/login" if path == "/" else f"/login?next={path}", 303)
            elif method == "GET" and _camera_page(path):
                response = _log_in_first(path)
            else:
                response = JSONResponse({"detail": "log in first (session cookie or Authorization: Bearer token)"},
                                        401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def _camera_page(path: str) -> bool:
    """Whether `path` is a camera's page (/cameras/{id}/diagnostics): a browser goes to log in first."""
    parts = path.split("/")
    return len(parts) == 4 and parts[1] == "cameras" and bool(parts[2]) and f"/{parts[3]}" in CAMERA_PAGES


def _log_in_first(path: str) -> Response:
    """A camera page asked for without credentials: 401 (as any route), with a page that takes a browser
    on to the login page, and back here after it."""
    target = html.escape(f"/login?next={quote(path)}")
    page = (f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={target}">'
            f'<title>Log in – OpticLink</title><p>Log in first: <a href="{target}">the login page</a></p>')
    return HTMLResponse(page, 401, headers={"WWW-Authenticate": "Bearer"})


def _principal(request: Request) -> Principal:
    who = request.scope.get(PRINCIPAL)
    if who is None:
        raise HTTPException(401, "log in first")
    return who


def _admin(request: Request) -> Principal:
    who = _principal(request)
    if not who.is_admin:
        raise HTTPException(403, "admins only")
    return who


def _exporter(request: Request) -> Principal:
    who = _principal(request)
    if not who.may_export:
        raise HTTPException(403, "viewers may not export recordings: ask an admin for the operator role")
    return who


Caller = Annotated[Principal, Depends(_principal)]
Admin = Annotated[Principal, Depends(_admin)]
Exporter = Annotated[Principal, Depends(_exporter)]


def _address(request: Request | WebSocket) -> str:
    return request.client.host if request.client is not None else "unknown"


def _login_page(message: str | None = None, status: int = 200) -> HTMLResponse:
    page = (WEB_DIR / "login.html").read_text()
    if message:
        page = page.replace("<!--message-->", f'<p class="error" role="alert">{html.escape(message)}</p>')
    return HTMLResponse(page, status)


def _next(value: str | None) -> str:
    """Where to go after logging in: a path on this service only (never `//host`, an open redirect)."""
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


def _bench_routes(app: FastAPI, service: Service, pages: Path) -> None:
    """What only tests and benchmarks use, when `BENCH_ENV` names their pages: those pages at
    /static/bench, and DELETE /api/hub/latency (admins: a bench's measuring window starts afresh)."""
    app.mount("/static/bench", StaticFiles(directory=pages), name="bench")  # a missing directory fails here

    @app.delete("/api/hub/latency", status_code=204)
    async def reset_hub_latency(who: Admin, request: Request) -> Response:
        for runtime in service.cameras.values():
            runtime.live.latencies.clear()
        await _others(app, service, request, who, "DELETE", "/api/hub/latency")  # every node's cameras
        return Response(status_code=204)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="OpticLink", docs_url="/api/docs", openapi_url="/api/openapi.json")
    gate = service.gate
    node = service.node
    if node is not None:  # a node of a cluster: a camera another node runs is served from there
        owners = Owners(local=lambda camera: camera in service.cameras,
                        known=lambda camera: camera in service.elsewhere, owner=node.owner,
                        secret=node.secret, node=node.id)
        app.add_middleware(CameraRouter, owners=owners, principal_key=PRINCIPAL)  # inside AccessControl
    app.add_middleware(AccessControl, gate=gate,  # added first: inside `isolate`, so refusals are isolated too
                       hop_secret=node.secret if node is not None else None)
    registry = CollectorRegistry()
    viewers = Gauge("opticlink_viewers", "live viewers", ["camera"], registry=registry)
    frames = Gauge("opticlink_frames_total", "frames published", ["camera"], registry=registry)
    connected = Gauge("opticlink_camera_playing", "1 when the camera session plays", ["camera"], registry=registry)
    dropped = Gauge("opticlink_udp_datagrams_dropped", "UDP datagrams not from the camera's address and ports "
                    "(this connection)", ["camera"], registry=registry)
    registry.register(diagnostics.monitor(service).collector())  # per-camera metrics (api.metrics), read at scrape

    @app.middleware("http")
    async def isolate(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.update(ISOLATION)
        if request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"
        elif "Cache-Control" not in response.headers:
            # pages and answers for a logged-in user: a shared or back-button copy would outlive the logout
            response.headers["Cache-Control"] = "no-store"
        return response

    if bench := os.environ.get(BENCH_ENV):
        _bench_routes(app, service, Path(bench))  # before /static, which would answer for /static/bench
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness, without credentials: says only that the service answers."""
        return {"status": "ok"}

    def _logged_in(request: Request, who: Principal, secret: str, to: str, as_json: bool) -> Response:
        response: Response = (JSONResponse({"user": who.name, "role": who.role.value}) if as_json
                              else RedirectResponse(to, 303))
        response.set_cookie(COOKIE, secret, max_age=int(gate.sessions.policy.absolute), path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, token: str | None = None, next: str | None = None) -> Response:
        """The login form; with `?token=` (a one-time link printed at start) logs in and goes to the page."""
        if token is None:
            return _login_page()
        try:
            who, secret = gate.log_in_with_link(token, _address(request))
        except LoginRefused as refused:
            return _login_page(refused.reason, refused.status)
        return _logged_in(request, who, secret, _next(next), False)

    @app.post("/login")
    async def login(request: Request) -> Response:
        """Log in with `name` and `password` (a form, or JSON); sets the session cookie. 401 when wrong,
        429 after too many failures from one address."""
        body = await request.body()
        as_json = request.headers.get("content-type", "").startswith("application/json")
        fields: dict[str, str] = {}
        if len(body) <= MAX_LOGIN_BODY:
            try:
                if as_json:
                    data = json.loads(body)
                    fields = {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
                else:
                    fields = {k: v[0] for k, v in parse_qs(body.decode(), max_num_fields=8).items()}
            except (ValueError, RecursionError):
                fields = {}
        try:
            who, secret = await gate.log_in(fields.get("name", ""), fields.get("password", ""), _address(request))
        except LoginRefused as refused:
            headers = {"Retry-After": str(int(refused.retry_after) + 1)} if refused.status == 429 else None
            if as_json:
                return JSONResponse({"detail": refused.reason}, refused.status, headers=headers)
            page = _login_page(refused.reason, refused.status)
            page.headers.update(headers or {})
            return page
        return _logged_in(request, who, secret, _next(fields.get("next")), as_json)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        """End this session (its cookie is cleared) and go to the login page."""
        gate.log_out(request.headers.get("cookie"), request.scope.get(PRINCIPAL), _address(request))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/api/me")
    async def me(who: Caller) -> dict[str, object]:
        """Who this request acts for: name, role, and the cameras they may talk to."""
        talk = [c.id for c, running in service.all_cameras() if running and who.talk_refusal(c.id) is None]
        return {"name": who.name, "role": who.role.value, "talk": talk}

    @app.get("/api/audit")
    async def audit_log(_: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        before: int | None = None) -> list[dict[str, object]]:
        """The audit log, newest first (admins only): logins, watching, talking. `before`: an entry's id."""
        return [{"id": row.id, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.at)), "user": row.user,
                 "address": row.address, "action": row.action, "camera": row.camera, "detail": row.detail,
                 "ok": row.ok} for row in gate.db.audit(limit, before)]

    @app.get("/audit", include_in_schema=False)
    async def audit_page(_: Admin) -> FileResponse:
        return FileResponse(WEB_DIR / "audit.html")

    @app.get("/cameras/{camera}/diagnostics", include_in_schema=False)
    async def diagnostics_page(camera: str, _: Caller) -> FileResponse:
        """A camera's diagnostics page (any logged-in role, as its data); the page reads the camera from
        its path. The former address, /static/diagnostics.html?camera=ID, still serves it."""
        if service.camera_config(camera) is None:
            raise HTTPException(404, f"no camera {camera[:64]!r}")
        return FileResponse(WEB_DIR / "diagnostics.html")

    def _listing(config: CameraConfig, who: Principal) -> dict[str, object]:
        """A camera's status, whether it is `declared` (in cameras.yaml: not editable here) and `enabled`;
        for admins also its configuration (`config`, never the password: `password_set`)."""
        runtime = service.cameras.get(config.id)
        out: dict[str, object] = (runtime.status() if runtime is not None else
                                  {"id": config.id, "name": config.title, "state": "disabled",
                                   "summary": "disabled: configured, not connected"})
        elsewhere = config.id in service.elsewhere
        if elsewhere:  # run by another node of the cluster (its status comes from there: `cameras`)
            out = {"id": config.id, "name": config.title, "state": "connecting",
                   "summary": "starting on a node of the cluster", "substream": config.substream_url is not None,
                   "talk": None, "node": None}
        elif service.node is not None:
            out["node"] = service.node.id
        out["declared"] = config.id in service.declared
        out["enabled"] = runtime is not None or elsewhere
        out["password_set"] = any(_secrets(config))
        if who.is_admin:
            out["config"] = describe(config, enabled=runtime is not None or elsewhere,
                                     declared=config.id in service.declared)
        return out

    @app.get("/api/cameras")
    async def cameras(who: Caller, request: Request) -> list[dict[str, object]]:
        """Every camera: its status (see `CameraRuntime.status`), `declared`, `enabled`; disabled cameras
        with `state: "disabled"`. On a node of a cluster, `node` says which runs it: a camera another
        node runs has that node's status (asked of it), else a placeholder while it moves."""
        listed = [_listing(config, who) for config, _ in service.all_cameras()]
        router = _router(app)
        if router is None or request.scope.get(HOP_SCOPE) or not service.elsewhere:
            return listed
        remote = await router.listings(list(service.elsewhere), who.user_id)
        return [{**remote[entry["id"]], **{k: entry[k] for k in ("declared", "enabled", "password_set", "config")
                                           if k in entry}}
                if entry["id"] in remote else entry for entry in listed]

    add_camera_routes(app, service, _admin, _address)  # POST /api/cameras, PATCH/DELETE, probe

    @app.get("/api/cameras/{camera}")
    async def camera(camera: str, who: Caller) -> dict[str, object]:
        config = service.camera_config(camera)
        if config is None:
            raise HTTPException(404, f"no camera {camera!r}")
        return _listing(config, who)

    @app.get("/api/cameras/{camera}/settings")
    async def camera_settings(camera: str) -> dict[str, object]:
        """The camera's audio preferences in effect: live_audio, record_audio, talkback, audio_offset_ms,
        half_duplex."""
        return settings.effective(_runtime(service, camera).config)

    @app.patch("/api/cameras/{camera}/settings")
    async def change_camera_settings(camera: str, change: CameraSettings, who: Admin,
                                     request: Request) -> dict[str, object]:
        """Change some of the camera's audio preferences (admins only): they take effect at once, without
        restarting the camera, and are kept over the configuration file's. Returns those in effect."""
        runtime = _runtime(service, camera)
        before = settings.effective(runtime.config)
        talker = talker_name(runtime.talk.talker) if runtime.talk is not None else None
        try:
            after = service.apply_settings(camera, change.changes())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        changed = [f"{name} {before[name]} -> {after[name]}" for name in settings.SETTINGS
                   if before[name] != after[name]]
        if before["talkback"] and not after["talkback"] and talker is not None:
            changed.append(f"{talker}'s talk ended")
        if changed:
            gate.audit.record("settings", user=who.name, address=_address(request), camera=camera,
                              detail=", ".join(changed))
        return after

    @app.get("/api/hub/latency")
    async def hub_latency(who: Caller, request: Request, samples_only: bool = False) -> dict[str, object]:
        """Per-frame hub latency (camera session to WebSocket write), milliseconds, of every node's cameras.
        `samples_only`: this node's samples in seconds (what nodes ask one another)."""
        samples = [s for runtime in service.cameras.values() for s in runtime.live.latencies]
        if samples_only:
            return {"samples": samples}
        for answer in await _others(app, service, request, who, "GET", "/api/hub/latency?samples_only=true"):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                samples += [float(s) for s in answer.json()["samples"]]
        if not samples:
            return {"count": 0}
        ms = np.array(samples) * 1000
        return {"count": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max())}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(who: Caller, request: Request) -> Response:
        if service.node is not None:  # cameras come and go with their leases: no stale sample of one gone
            for gauge in (viewers, frames, connected, dropped):
                gauge.clear()
        for runtime in service.cameras.values():
            viewers.labels(runtime.config.id).set(len(runtime.live.viewers))
            frames.labels(runtime.config.id).set(runtime.live.frames)
            connected.labels(runtime.config.id).set(1 if runtime.session.state == "playing" else 0)
            client = runtime.session.client
            dropped.labels(runtime.config.id).set(client.connection.datagrams_dropped if client is not None else 0)
        text = generate_latest(registry)
        others = await _others(app, service, request, who, "GET", "/metrics")  # a cluster: every node's cameras
        if others:
            text = merge_metrics([text.decode(), *(a.text for a in others if a.status_code == 200)])
        return Response(text, media_type="text/plain; version=0.0.4")

    app.include_router(diagnostics.router(service, _principal))
    app.include_router(audio_test.router(service, _principal))
    app.include_router(onvif.router(service, _principal))  # ONVIF discovery and import, admins only

    @app.websocket("/api/cameras/{camera}/live")
    async def live(websocket: WebSocket, camera: str) -> None:
        """The camera live (`live.protocol`). `?stream=sub`: its sub-stream (low resolution, for tiles), run
        while someone watches it; a camera without one sends its main stream. The first message, text,
        says which: `{"type": "stream", "stream": "main"|"sub", "requested", "substream": bool[, "reason"]}`."""
        who: Principal = websocket.scope[PRINCIPAL]
        runtime = service.cameras.get(camera)
        if runtime is None:
            await websocket.accept()  # then closed with a code the page can read, not a bare 403
            await websocket.close(code=4404, reason=f"no camera {camera[:64]!r}")
            return
        requested = websocket.query_params.get("stream", "main")
        if requested not in ("main", "sub"):
            await websocket.accept()
            await websocket.close(code=4400, reason='stream: "main" or "sub"')
            return
        address = _address(websocket)
        sub = runtime.substream
        stream = "sub" if requested == "sub" and sub is not None else "main"
        # the first message says which stream this is; a camera without a sub-stream sends its main one
        hello: dict[str, object] = {"type": "stream", "stream": stream, "requested": requested,
                                    "substream": sub is not None}
        if requested != stream:
            hello["reason"] = "this camera has no sub-stream: this is its main stream"

        def event(action: str) -> None:
            gate.audit.record(action, user=who.name, address=address, camera=camera,
                              detail="sub-stream" if stream == "sub" else None)

        if stream == "sub":
            assert sub is not None
            feed = sub.acquire()  # started by its first viewer, stopped a while after its last

            def others() -> list[LiveFeed]:
                return [runtime.live]
        else:
            feed = runtime.live

            def others() -> list[LiveFeed]:
                return [sub.live] if sub is not None and sub.live is not None else []
        try:
            await serve_viewer(websocket, feed, runtime.talk, user=who.name,
                               half_duplex=lambda: runtime.config.half_duplex,  # the settings at each talk
                               talk_unavailable=lambda: settings.talk_unavailable(runtime),
                               talk_refusal=who.talk_refusal(camera), on_event=event, hello=hello, others=others)
        finally:
            if stream == "sub":
                assert sub is not None
                sub.release()

    @app.get("/api/cameras/{camera}/timeline")
    async def camera_timeline(camera: str, start: float, end: float) -> dict[str, object]:
        """What the camera recorded between `start` and `end` (Unix seconds, at most 31 days): `segments`
        (recorded ranges, contiguous segments merged), `gaps` (start, end, cause) and `talk` (start, end,
        user: who talked to the camera when)."""
        _runtime(service, camera)
        if not (0 < start < end and end - start <= 31 * 86400):
            raise HTTPException(422, "start and end: Unix seconds, start before end, at most 31 days apart")
        return await asyncio.to_thread(timeline, service.recordings, service.database, camera, start, end, time.time())

    @app.websocket("/api/cameras/{camera}/playback")
    async def playback(websocket: WebSocket, camera: str) -> None:
        """The camera's recording in the live wire format (see `api.playback`); authenticated as the live
        WebSocket (AccessControl), audited as playback_start/playback_stop."""
        who: Principal = websocket.scope[PRINCIPAL]
        runtime = service.cameras.get(camera)
        if runtime is None:
            await websocket.accept()
            await websocket.close(code=4404, reason=f"no camera {camera[:64]!r}")
            return
        address = _address(websocket)

        def event(action: str, detail: str | None) -> None:
            gate.audit.record(action, user=who.name, address=address, camera=camera, detail=detail)

        await serve_playback(websocket, camera, runtime.config.title,
                             opener(service.config.recordings_root, service.recordings, camera),
                             user=who.name, on_event=event)

    # recordings: export -------------------------------------------------------------------------
    exports = asyncio.Semaphore(MAX_EXPORTS)

    @app.get("/api/cameras/{camera}/export")
    async def export_recording(camera: str, start: str, end: str, who: Exporter, request: Request,
                               format: Literal["mkv", "mp4", "mov"] = "mp4") -> FileResponse:
        """The camera's recordings from `start` to `end` (ISO 8601 or Unix seconds, at most 24 h) as one
        file: mp4 (AAC audio, plays in a browser), mkv or mov (see `opticlink.record.export`)."""
        from opticlink.record.export import NothingRecorded, export, parse_time

        _runtime(service, camera)
        try:
            first, last = parse_time(start), parse_time(end)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if not first < last <= first + MAX_EXPORT_S:
            raise HTTPException(400, f"the end must come after the start, at most {MAX_EXPORT_S // 3600} h after")
        segments = service.recordings.segments(camera, first, last)
        if not segments:
            raise HTTPException(404, f"nothing of {camera} was recorded in that range")
        descriptor, name = tempfile.mkstemp(prefix="opticlink-export-", suffix=f".{format}")
        os.close(descriptor)
        path = Path(name)
        try:
            async with exports:  # a few at a time: each takes a core while it transcodes
                summary = await asyncio.to_thread(export, service.config.recordings_root, segments, first, last,
                                                  path)
        except NothingRecorded:
            path.unlink(missing_ok=True)
            raise HTTPException(404, f"nothing of {camera} was recorded in that range") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        gate.audit.record("export", user=who.name, address=_address(request), camera=camera,
                          detail=f"{start}..{end} {format}")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(summary.start_wall))
        media = {"mp4": "video/mp4", "mkv": "video/x-matroska", "mov": "video/quicktime"}[format]
        return FileResponse(path, media_type=media, filename=f"{camera}-{stamp}.{format}",
                            background=BackgroundTask(path.unlink, missing_ok=True))

    return app


async def _others(app: FastAPI, service: Service, request: Request, who: Principal, method: str,
                  path: str) -> list:  # type: ignore[type-arg]
    """The other live nodes' answers to `method path` (a cluster, asked by a browser or script: never
    on a hop, so nodes do not ask one another in circles); [] for a node alone."""
    router = _router(app)
    if router is None or service.node is None or request.scope.get(HOP_SCOPE):
        return []
    peers = {n: p.address for n, p in service.node.ownership.view.nodes.items()}
    return await router.gather(method, path, who.user_id, peers)


def _router(app: FastAPI) -> CameraRouter | None:
    """The app's CameraRouter (a cluster's node), found in its built middleware stack."""
    layer = app.middleware_stack
    while layer is not None:
        if isinstance(layer, CameraRouter):
            return layer
        layer = getattr(layer, "app", None)
    return None


def _runtime(service: Service, camera: str):  # type: ignore[no-untyped-def]
    runtime = service.cameras.get(camera)
    if runtime is None:
        raise HTTPException(404, f"no camera {camera!r}")
    return runtime
