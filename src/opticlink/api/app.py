"""The FastAPI application: player files, camera status, live WebSockets, metrics.

Every response carries COOP/COEP headers, so the player page is cross-origin isolated and may
share memory (SharedArrayBuffer) between its Worker and its AudioWorklet.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from opticlink.api.service import Service
from opticlink.live.websocket import serve_viewer

WEB_DIR = Path(str(resources.files("opticlink") / "web"))
ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="OpticLink", docs_url="/api/docs", openapi_url="/api/openapi.json")
    registry = CollectorRegistry()
    viewers = Gauge("opticlink_viewers", "live viewers", ["camera"], registry=registry)
    frames = Gauge("opticlink_frames_total", "frames published", ["camera"], registry=registry)
    connected = Gauge("opticlink_camera_playing", "1 when the camera session plays", ["camera"], registry=registry)
    dropped = Gauge("opticlink_udp_datagrams_dropped", "UDP datagrams not from the camera's address and ports "
                    "(this connection)", ["camera"], registry=registry)

    @app.middleware("http")
    async def isolate(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.update(ISOLATION)
        if request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"
        return response

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/api/cameras")
    async def cameras() -> list[dict[str, object]]:
        return [runtime.status() for runtime in service.cameras.values()]

    @app.get("/api/cameras/{camera}")
    async def camera(camera: str) -> dict[str, object]:
        return _runtime(service, camera).status()

    @app.get("/api/hub/latency")
    async def hub_latency() -> dict[str, object]:
        """Per-frame hub latency (camera session to WebSocket write), milliseconds."""
        samples = [s for runtime in service.cameras.values() for s in runtime.hub.latencies]
        if not samples:
            return {"count": 0}
        ms = np.array(samples) * 1000
        return {"count": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max())}

    @app.delete("/api/hub/latency", status_code=204)
    async def reset_hub_latency() -> Response:
        for runtime in service.cameras.values():
            runtime.hub.latencies.clear()
        return Response(status_code=204)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        for runtime in service.cameras.values():
            viewers.labels(runtime.config.id).set(len(runtime.hub.viewers))
            frames.labels(runtime.config.id).set(runtime.hub.frames)
            connected.labels(runtime.config.id).set(1 if runtime.session.state == "playing" else 0)
            client = runtime.session.client
            dropped.labels(runtime.config.id).set(client.connection.datagrams_dropped if client is not None else 0)
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.websocket("/api/cameras/{camera}/live")
    async def live(websocket: WebSocket, camera: str) -> None:
        runtime = service.cameras.get(camera)
        if runtime is None:
            await websocket.close(code=4404, reason=f"no camera {camera!r}")
            return
        await serve_viewer(websocket, runtime.hub, runtime.talk, half_duplex=runtime.config.half_duplex,
                           talk_unavailable=None if runtime.config.talkback else "talkback is off for this camera")

    return app


def _runtime(service: Service, camera: str):  # type: ignore[no-untyped-def]
    runtime = service.cameras.get(camera)
    if runtime is None:
        raise HTTPException(404, f"no camera {camera!r}")
    return runtime
