"""The live endpoint: one WebSocket per viewer, fed from its bounded queue in the hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import WebSocket, WebSocketDisconnect

from opticlink.hub import CameraHub, Viewer

log = logging.getLogger(__name__)


async def serve_viewer(websocket: WebSocket, hub: CameraHub) -> None:
    """Send the camera's frames until the viewer leaves; a slow viewer only slows itself."""
    await websocket.accept()
    loop = asyncio.get_running_loop()
    viewer = Viewer(f"{hub.camera}/{websocket.client}")
    hub.attach(viewer, loop.time())
    reader = loop.create_task(_drain(websocket, viewer))
    try:
        while not viewer.closed:
            messages = await viewer.get()
            if viewer.closed:
                break
            for message in messages:
                await websocket.send_bytes(message.data)
            viewer.sent += len(messages)
            hub.record_latency(messages, loop.time())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        hub.detach(viewer)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _drain(websocket: WebSocket, viewer: Viewer) -> None:
    """Read (and for now ignore) what the viewer sends, to notice when it goes."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        viewer.close()
