"""The live endpoint: one WebSocket per viewer, fed from its bounded queue in the live feed.

What the viewer sends back is talk (JSON control: start, stop; binary talk frames) and, every 2 s, a
report of how its player fares (audio underruns, latency: for the camera's diagnostics), each
checked; a malformed or oversized frame is refused and logged (rate-limited), and neither the
talk session nor the live view suffers from it.

Who the viewer is was settled before (the service's auth): `user` is their name, `talk_refusal`
why they may not talk to this camera, if so. Talk is owned by the connection, not the name: the
talk session's talker is `user#n`, unique to this WebSocket, so another connection of the same user
can neither stop nor feed it; everyone is shown the user name (`talker_name`).

A camera with a sub-stream has two feeds (main and sub); talk is the camera's, so who talks is told
to the viewers of both (`others`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect

from opticlink.live.feed import LiveFeed, Viewer
from opticlink.live.protocol import TalkFrameError, decode_talk
from opticlink.talk.session import TalkBusy, TalkSession, TalkUnavailable

log = logging.getLogger(__name__)
MAX_CONTROL_BYTES = 4096
MAX_TALK_BYTES = 65536
# Viewers of one camera: 64 browsers of a 4 Mbit/s stream are 256 Mbit/s, what one camera's share of a
# gigabit link can carry; a wall of more uses sub-streams, and more than that is an attack.
MAX_VIEWERS_PER_CAMERA = 64
# A viewer whose socket takes nothing for this long is not reading (a frozen tab, a dead client): the feed
# already skips its video, but its connection (and the audio queued for it) would stay forever.
SEND_STALL_S = 30.0
# A player's report of itself (`_player_report`): beyond these it is broken or lying.
MAX_REPORTED_UNDERRUNS = 1 << 31
MAX_REPORTED_LATENCY_MS = 600_000.0
_numbers = itertools.count(1)


Event = Callable[[str], None]  # "watch_start", "watch_stop", "talk_start", "talk_stop": for the audit log
Setting = Callable[[], bool]  # a camera's setting as it is now (settings change at runtime)
Reason = Callable[[], str | None]  # ... why talk is not possible with this camera now, if so
Feeds = Callable[[], Iterable[LiveFeed]]  # the camera's other live feeds now (main or sub-stream)


def talker_name(talker: str | None) -> str | None:
    """The user name others see for a talk session's talker (`user#connection`)."""
    return None if talker is None else talker.rpartition("#")[0] or talker


async def serve_viewer(websocket: WebSocket, feed: LiveFeed, talk: TalkSession | None = None, *, user: str,
                       half_duplex: bool | Setting = False, talk_unavailable: str | Reason | None = None,
                       talk_refusal: str | None = None, on_event: Event | None = None,
                       hello: dict[str, object] | None = None, others: Feeds | None = None) -> None:
    """Send the camera's frames until the viewer leaves; a slow viewer only slows itself, and one that
    stops reading for `SEND_STALL_S` is disconnected (4408). Past `MAX_VIEWERS_PER_CAMERA` a new
    viewer is refused (4429).

    `half_duplex` and `talk_unavailable` (why the camera cannot be talked to now: talkback off) may be
    callables, read at each talk request: the camera's settings as they are then. `talk_refusal`: why
    this viewer may not talk (their role). `hello`: a JSON text message sent before anything else
    (which stream this is). `others`: the camera's other feeds, whose viewers are told who talks too."""
    await websocket.accept()
    if len(feed.viewers) >= MAX_VIEWERS_PER_CAMERA:
        await websocket.close(code=4429, reason=f"this camera already has {MAX_VIEWERS_PER_CAMERA} viewers")
        return
    loop = asyncio.get_running_loop()
    viewer = Viewer(user)
    viewer.talk_refusal = talk_refusal
    if hello is not None:
        viewer.offer_text(json.dumps(hello), loop.time())
    feed.attach(viewer, loop.time())
    event = on_event or (lambda action: None)
    event("watch_start")

    unavailable: Reason = talk_unavailable if callable(talk_unavailable) else lambda: talk_unavailable
    duplex: Setting = half_duplex if callable(half_duplex) else lambda: half_duplex

    def refusal() -> str | None:
        reason = unavailable()
        return (reason or "this camera has no talkback") if talk is None else reason or talk_refusal

    viewer.offer_text(json.dumps(_talk_state(viewer, talk, refusal())), loop.time())
    owner = f"{user}#{next(_numbers)}"
    reader = loop.create_task(_receive(websocket, viewer, feed, talk, owner, duplex, refusal, event,
                                       others or (lambda: ())))
    try:
        while not viewer.closed:
            messages = await viewer.get()
            if viewer.closed:
                break
            try:
                async with asyncio.timeout(SEND_STALL_S):
                    for message in messages:
                        if isinstance(message.data, str):
                            await websocket.send_text(message.data)
                        else:
                            await websocket.send_bytes(message.data)
            except TimeoutError:
                log.warning("viewer %s of camera %s read nothing for %.0f s: disconnected", user, feed.camera,
                            SEND_STALL_S)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(websocket.close(code=4408, reason="not reading"), 1.0)
                break
            viewer.sent += len(messages)
            feed.record_latency(messages, loop.time())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        feed.detach(viewer)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        event("watch_stop")


def _talk_state(viewer: Viewer, talk: TalkSession | None, reason: str | None) -> dict[str, object]:
    """What a viewer is told of talk: who talks, who they are, and whether they may (else why not)."""
    return {"type": "talk", "talking": talker_name(talk.talker) if talk else None, "you": viewer.name,
            "available": reason is None, "reason": reason}


def announce_talk_available(feed: LiveFeed, talk: TalkSession | None, unavailable: str | None, now: float) -> None:
    """Tell every viewer whether they may talk now that the camera's talkback changed (`unavailable`:
    why nobody may, if so); each viewer's own refusal (their role) still holds."""
    for viewer in feed.viewers:
        reason = unavailable or ("this camera has no talkback" if talk is None else viewer.talk_refusal)
        viewer.offer_text(json.dumps(_talk_state(viewer, talk, reason)), now)


def end_talk(feed: LiveFeed, talk: TalkSession, reason: str, now: float) -> str | None:
    """Take the speaker from whoever has it (the camera's talkback was switched off): their talk stops,
    they hear the camera again, and every viewer is told why. Returns the talker's user name, if any."""
    talker = talk.talker
    if talker is None:
        return None
    talk.stop(talker)
    for viewer in feed.viewers:
        viewer.mute_audio = False  # only the talker's can be muted
    feed.broadcast(json.dumps({"type": "talk", "talking": None, "state": "error", "reason": reason}), now)
    return talker_name(talker)


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


def _player_report(control: dict[str, object]) -> tuple[int, float | None] | None:
    """The figures of a player's `{"action": "report", "underruns": N, "latencyMs": X}` (its audio underruns
    since it connected, its glass-to-glass latency p95 or null), or None when they are not plausible."""
    underruns, latency = control.get("underruns"), control.get("latencyMs")
    if isinstance(underruns, bool) or not isinstance(underruns, int) or not 0 <= underruns <= MAX_REPORTED_UNDERRUNS:
        return None
    if latency is None:
        return underruns, None
    if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency <= MAX_REPORTED_LATENCY_MS:
        return None  # NaN fails the comparison too
    return underruns, float(latency)


async def _receive(websocket: WebSocket, viewer: Viewer, feed: LiveFeed, talk: TalkSession | None, owner: str,
                   half_duplex: Setting, refusal: Reason, event: Event, others: Feeds) -> None:
    loop = asyncio.get_running_loop()
    warn = _RateLimitedLog()

    def reply(**state: object) -> None:
        viewer.offer_text(json.dumps({"type": "talk", **state}), loop.time())

    def announce() -> None:
        text = json.dumps({"type": "talk", "talking": talker_name(talk.talker) if talk else None})
        for each in (feed, *others()):
            each.broadcast(text, loop.time())

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
                except RecursionError:  # "[[[[..." fits in 4 KB and nests deeper than the parser recurses
                    viewer.rejected += 1
                    warn.warning("control", "viewer %s: control message nested too deeply", viewer.name)
                    reply(state="error", reason="control message nested too deeply")
                    continue
                if action == "start":
                    reason = refusal()
                    if talk is None or reason is not None:
                        reply(state="unavailable", reason=reason or "this camera has no talkback")
                        continue
                    try:
                        info = await talk.start(owner)
                    except TalkBusy as busy:
                        reply(state="busy", talker=talker_name(busy.talker))
                        continue
                    except TalkUnavailable as exc:
                        reply(state="unavailable", reason=str(exc))
                        continue
                    if talk.talker != owner or (reason := refusal()) is not None:
                        # talkback went off while the backchannel opened
                        talk.stop(owner)
                        reply(state="unavailable", reason=reason or "talk was ended")
                        continue
                    viewer.mute_audio = half_duplex()
                    reply(state="granted", **info)
                    announce()
                    event("talk_start")
                elif action == "report":
                    figures = _player_report(control)
                    if figures is None:
                        viewer.rejected += 1
                        warn.warning("report", "viewer %s: malformed player report refused", viewer.name)
                        continue
                    feed.viewer_report(viewer, *figures, time.monotonic())
                elif action == "stop":
                    if talk is not None and talk.talker == owner:
                        talk.stop(owner)
                        viewer.mute_audio = False
                        reply(state="stopped")
                        announce()
                        event("talk_stop")
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
                if talk is None or talk.talker != owner:
                    viewer.rejected += 1
                    continue
                talk.push(owner, np.frombuffer(pcm, "<i2"), rate, captured / 1e6 or None, sent / 1e6 or None)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if talk is not None and talk.talker == owner:
            talk.stop(owner)
            announce()
            event("talk_stop")
        if viewer.rejected:
            log.warning("viewer %s left after refusing %d messages", viewer.name, viewer.rejected)
        viewer.close()
