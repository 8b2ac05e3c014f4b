"""The live endpoint: one WebSocket per viewer, fed from its bounded queue in the hub.

What the viewer sends back is talk: JSON control (start, stop) and binary talk frames, each
checked; a malformed or oversized frame is refused and logged (rate-limited), and neither the
talk session nor the live view suffers from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect

from opticlink.hub import CameraHub, Viewer
from opticlink.live.protocol import TalkFrameError, decode_talk
from opticlink.talk.session import TalkBusy, TalkSession, TalkUnavailable

log = logging.getLogger(__name__)
MAX_CONTROL_BYTES = 4096
MAX_TALK_BYTES = 65536
_numbers = itertools.count(1)


async def serve_viewer(websocket: WebSocket, hub: CameraHub, talk: TalkSession | None = None, *,
                       half_duplex: bool = False, talk_unavailable: str | None = None) -> None:
    """Send the camera's frames until the viewer leaves; a slow viewer only slows itself."""
    await websocket.accept()
    loop = asyncio.get_running_loop()
    name = (websocket.query_params.get("name") or "")[:40].strip() or f"viewer {next(_numbers)}"
    viewer = Viewer(name)
    hub.attach(viewer, loop.time())
    talk_state = {"type": "talk", "talking": talk.talker if talk else None, "you": name,
                  "available": talk is not None,
                  "reason": None if talk is not None else talk_unavailable or "this camera has no talkback"}
    viewer.offer_text(json.dumps(talk_state), loop.time())
    reader = loop.create_task(_receive(websocket, viewer, hub, talk, half_duplex, talk_unavailable))
    try:
        while not viewer.closed:
            messages = await viewer.get()
            if viewer.closed:
                break
            for message in messages:
                if isinstance(message.data, str):
                    await websocket.send_text(message.data)
                else:
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


class _RateLimitedLog:
    """At most one warning per kind of problem every `every` seconds, with a count of the rest."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def warning(self, kind: str, text: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -1e9) >= self.every:
            count = self.suppressed.pop(kind, 0)
            log.warning(text + (f" ({count} more since)" if count else ""), *args)
            self.last[kind] = now
        else:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1


async def _receive(websocket: WebSocket, viewer: Viewer, hub: CameraHub, talk: TalkSession | None,
                   half_duplex: bool, talk_unavailable: str | None) -> None:
    loop = asyncio.get_running_loop()
    warn = _RateLimitedLog()

    def reply(**state: object) -> None:
        viewer.offer_text(json.dumps({"type": "talk", **state}), loop.time())

    def announce() -> None:
        hub.broadcast(json.dumps({"type": "talk", "talking": talk.talker if talk else None}), loop.time())

    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                if len(text) > MAX_CONTROL_BYTES:
                    viewer.rejected += 1
                    warn.warning("control", "viewer %s: control message of %d bytes refused", viewer.name, len(text))
                    continue
                try:
                    control = json.loads(text)
                    action = control.get("action") if isinstance(control, dict) else None
                except json.JSONDecodeError:
                    action = None
                if action == "start":
                    if talk is None:
                        reply(state="unavailable", reason=talk_unavailable or "this camera has no talkback")
                        continue
                    try:
                        info = await talk.start(viewer.name)
                    except TalkBusy as busy:
                        reply(state="busy", talker=busy.talker)
                        continue
                    except TalkUnavailable as exc:
                        reply(state="unavailable", reason=str(exc))
                        continue
                    viewer.mute_audio = half_duplex
                    reply(state="granted", **info)
                    announce()
                elif action == "stop":
                    if talk is not None and talk.talker == viewer.name:
                        talk.stop(viewer.name)
                        viewer.mute_audio = False
                        reply(state="stopped")
                        announce()
                else:
                    viewer.rejected += 1
                    warn.warning("control", "viewer %s: unknown control message %r", viewer.name, text[:80])
                    reply(state="error", reason="unknown control message")
            elif data is not None:
                if len(data) > MAX_TALK_BYTES:
                    viewer.rejected += 1
                    warn.warning("talk", "viewer %s: talk frame of %d bytes refused (over %d)", viewer.name,
                                 len(data), MAX_TALK_BYTES)
                    continue
                try:
                    _, rate, captured, sent, pcm = decode_talk(data)
                except TalkFrameError as exc:
                    viewer.rejected += 1
                    warn.warning("talk", "viewer %s: talk frame refused: %s", viewer.name, exc)
                    continue
                if talk is None or talk.talker != viewer.name:
                    viewer.rejected += 1
                    continue
                talk.push(viewer.name, np.frombuffer(pcm, "<i2"), rate, captured / 1e6 or None, sent / 1e6 or None)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if talk is not None and talk.talker == viewer.name:
            talk.stop(viewer.name)
            announce()
        if viewer.rejected:
            log.warning("viewer %s left after refusing %d messages", viewer.name, viewer.rejected)
        viewer.close()
