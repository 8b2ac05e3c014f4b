"""Recordings to the browser: the playback WebSocket and the timeline.

The playback WebSocket speaks the live wire format (`live.protocol`: config and frame messages), so
the player's Worker, WebCodecs and AudioWorklet play a recording exactly as they play a camera; the
frames come paced by `record.playback.PlaybackSource`, re-stamped on the playback session's clock,
with their recorded wall time in the frame header's capture-time field. Text messages, both ways:

- from the page, JSON: `{"action": "play" | "pause"}`, `{"action": "seek", "wall": T}` (Unix
  seconds), `{"action": "speed", "value": 0.5 | 1 | 2 | 4}`, `{"action": "lead", "value": S}` (send
  frames S seconds, 0 to `MAX_LEAD_S`, before they are due: a player slaved to a group's leader in
  synchronized playback holds them until the leader's clock reaches them); at most `MAX_CONTROL_BYTES`, at most
  `MAX_QUEUED_CONTROLS` waiting (seeks in a row collapse into the last); anything else is answered
  `{"type": "error", "reason": ...}` and logged (rate-limited);
- from the server: `{"type": "reset", "pts", "wall", "speed", "state"}` before the frames of a seek
  (the player restarts its decoder and clock and shows the picture at `pts` at once),
  `{"type": "playback", "state": "playing" | "paused" | "ended", "speed", "reason"}`, and
  `{"type": "position", "wall"}` a few times a second while playing.

The query string may give `start` (Unix seconds; default a minute ago), `speed` and `paused=1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from fastapi import WebSocket, WebSocketDisconnect

from opticlink.live.protocol import encode_config, encode_frame, track_description
from opticlink.record.playback import (
    MAX_LEAD_S,
    SPEEDS,
    Config,
    Event,
    Frame,
    OpenReader,
    PlaybackSource,
    Position,
    Reset,
    State,
)
from opticlink.record.reader import RecordedFrame, read_frames
from opticlink.store.database import Database
from opticlink.store.recordings import Recordings, SegmentRow

log = logging.getLogger(__name__)

MAX_CONTROL_BYTES = 1024
MAX_QUEUED_CONTROLS = 32
MAX_PLAYBACKS_PER_CAMERA = 16  # each reads files and demuxes: a wall of 16 cameras played back by one page is fine
SEND_STALL_S = 30.0
SEGMENT_LOOKBACK_S = 400.0  # a segment starts at most this long before a time it holds (MAX_SEGMENT_S + margin)
SEGMENT_WINDOW_S = 3600.0  # segments opened by one reader (it is opened again at the end of them)
MAX_FUTURE_S = 86400.0
_playing: dict[str, int] = {}

Audit = Callable[[str, str | None], None]  # playback_start, playback_stop; and a detail


def opener(root: Path, recordings: Recordings, camera: str) -> OpenReader:
    """`open_reader(wall)` for a camera: its recorded frames from the keyframe before `wall`."""
    def open_reader(wall: float) -> Iterator[RecordedFrame]:
        segments = recordings.segments(camera, wall - SEGMENT_LOOKBACK_S, wall + SEGMENT_WINDOW_S, limit=400)
        return read_frames(root, [_still_written(s) for s in segments], wall)

    return open_reader


def _still_written(segment: SegmentRow) -> SegmentRow:
    """A segment as the reader should place its frames in wall time. One being written that has not
    been indexed past its start yet (its first flush is up to half a second away) spans no media time,
    and every frame read from its file would get its start's wall time: its frames are placed at one
    wall second per media second from its start instead (as the recorder indexes it meanwhile)."""
    if segment.state != "writing" or segment.media_end_us > segment.media_start_us:
        return segment
    return replace(segment, end_wall=segment.start_wall + SEGMENT_LOOKBACK_S,
                   media_end_us=segment.media_start_us + round(SEGMENT_LOOKBACK_S * 1e6))


def parse_control(text: str, now_wall: float) -> tuple[str, float | None]:
    """(action, value) of a control message, or ValueError saying what is wrong with it."""
    if len(text) > MAX_CONTROL_BYTES:
        raise ValueError(f"control message of {len(text)} bytes is over {MAX_CONTROL_BYTES}")
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("control message is not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("control message is not a JSON object")
    action = message.get("action")
    if action in ("play", "pause"):
        return action, None
    if action == "seek":
        wall = message.get("wall")
        if isinstance(wall, bool) or not isinstance(wall, int | float) or not math.isfinite(wall) \
                or not 0 < wall < now_wall + MAX_FUTURE_S:
            raise ValueError("seek needs a `wall` time in Unix seconds")
        return action, float(wall)
    if action == "speed":
        value = message.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) not in SPEEDS:
            raise ValueError(f"speed `value` must be one of {list(SPEEDS)}")
        return action, float(value)
    if action == "lead":
        value = message.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_LEAD_S:
            raise ValueError(f"lead `value` must be seconds from 0 to {MAX_LEAD_S}")
        return action, float(value)
    raise ValueError("unknown control message")


def start_of(query: dict[str, str], now_wall: float) -> tuple[float, float, bool]:
    """(start wall, speed, playing) from the WebSocket's query string, or ValueError."""
    try:
        start = float(query.get("start", now_wall - 60.0))
        speed = float(query.get("speed", 1.0))
    except ValueError:
        raise ValueError("start and speed must be numbers") from None
    if not math.isfinite(start) or not 0 < start < now_wall + MAX_FUTURE_S:
        raise ValueError("start must be a time in Unix seconds")
    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {list(SPEEDS)}")
    return start, speed, query.get("paused") not in ("1", "true")


async def serve_playback(websocket: WebSocket, camera: str, name: str, open_reader: OpenReader, *, user: str,
                         on_event: Audit | None = None) -> None:
    """Play `camera`'s recording to one viewer until they leave."""
    await websocket.accept()
    try:
        start, speed, playing = start_of(dict(websocket.query_params), time.time())
    except ValueError as exc:
        await websocket.close(code=4400, reason=str(exc))
        return
    if _playing.get(camera, 0) >= MAX_PLAYBACKS_PER_CAMERA:
        await websocket.close(code=4429, reason=f"this camera already has {MAX_PLAYBACKS_PER_CAMERA} playbacks")
        return
    _playing[camera] = _playing.get(camera, 0) + 1
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(1, thread_name_prefix=f"playback-{camera}")  # file reads off the event loop
    controls: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue(MAX_QUEUED_CONTROLS)
    wake = asyncio.Event()
    event = on_event or (lambda action, detail: None)
    event("playback_start", time.strftime("from %Y-%m-%dT%H:%M:%SZ", time.gmtime(start)))
    reader = loop.create_task(_receive(websocket, controls, wake, user))
    try:
        source = await loop.run_in_executor(executor, lambda: PlaybackSource(open_reader, start, loop.time(),
                                                                              speed=speed, playing=playing))
        while True:
            wake.clear()  # before taking the commands: one that comes after wakes the wait below
            commands = _collapse(controls)
            events, due = await loop.run_in_executor(executor, _step, source, commands, loop.time)
            async with asyncio.timeout(SEND_STALL_S):
                for item in events:
                    await _send(websocket, camera, name, item)
            if reader.done():
                break
            if due is None:
                await wake.wait()
            elif (delay := due - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
    except TimeoutError:
        log.warning("playback viewer %s of camera %s read nothing for %.0f s: disconnected", user, camera,
                    SEND_STALL_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code=4408, reason="not reading"), 1.0)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    except Exception:
        log.exception("playback of camera %s failed", camera)
        with contextlib.suppress(Exception):
            await websocket.close(code=1011, reason="playback failed: see the service log")
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        executor.shutdown(wait=False, cancel_futures=True)
        _playing[camera] -= 1
        event("playback_stop", None)


def _collapse(controls: asyncio.Queue[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
    """The commands waiting, a run of seeks reduced to its last (a drag across the timeline)."""
    out: list[tuple[str, float | None]] = []
    while not controls.empty():
        command = controls.get_nowait()
        if out and out[-1][0] == "seek" and command[0] == "seek":
            out[-1] = command
        else:
            out.append(command)
    return out


def _step(source: PlaybackSource, commands: list[tuple[str, float | None]],
          clock: Callable[[], float]) -> tuple[list[Event], float | None]:
    """Apply the page's commands, take what is due, and say when more will be (in the playback's thread:
    this reads files)."""
    for action, value in commands:
        now = clock()
        if action == "play":
            source.play(now)
        elif action == "pause":
            source.pause(now)
        elif action == "seek" and value is not None:
            source.seek(value, now)
        elif action == "speed" and value is not None:
            source.set_speed(value, now)
        elif action == "lead" and value is not None:
            source.set_lead(value)
    return source.poll(clock()), source.next_due()


async def _send(websocket: WebSocket, camera: str, name: str, item: Event) -> None:
    if isinstance(item, Frame):
        await websocket.send_bytes(encode_frame(item.frame, time.time()))
    elif isinstance(item, Config):
        await websocket.send_bytes(encode_config(camera, name, [
            track_description(track, kind, config) for track, (kind, config) in item.tracks.items()]))
    elif isinstance(item, Reset):
        await websocket.send_text(json.dumps({"type": "reset", "pts": item.pts_us, "wall": item.wall,
                                              "speed": item.speed, "state": item.state}))
    elif isinstance(item, Position):
        await websocket.send_text(json.dumps({"type": "position", "wall": item.wall}))
    elif isinstance(item, State):
        await websocket.send_text(json.dumps({"type": "playback", "state": item.state, "speed": item.speed,
                                              "reason": item.reason}))


async def _receive(websocket: WebSocket, controls: asyncio.Queue[tuple[str, float | None]], wake: asyncio.Event,
                   user: str) -> None:
    last_warning = -math.inf
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            try:
                if text is None:
                    raise ValueError("this socket takes JSON text control messages only")
                command = parse_control(text, time.time())
                controls.put_nowait(command)
            except (ValueError, asyncio.QueueFull) as exc:
                reason = str(exc) if isinstance(exc, ValueError) else "too many control messages at once"
                if time.monotonic() - last_warning > 5.0:
                    last_warning = time.monotonic()
                    log.warning("playback viewer %s: control refused: %s", user, reason)
                with contextlib.suppress(Exception):
                    await websocket.send_text(json.dumps({"type": "error", "reason": reason}))
                continue
            wake.set()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        wake.set()


MAX_TIMELINE_S = 31 * 86400.0  # the longest span one timeline request covers
MAX_TIMELINE_SEGMENTS = 50_000
MAX_TIMELINE_GAPS = 50_000
MAX_TALK_S = 3600.0  # a talk that began this long before the span is looked for; an unended one ends here
CONTIGUOUS_S = 1.0  # segments closer than this are one recorded range


def timeline(recordings: Recordings, database: Database, camera: str, start: float, end: float,
             now: float) -> dict[str, object]:
    """What a camera recorded between two wall times: recorded ranges (contiguous segments merged),
    gaps with their cause, and talk spans (who talked when, from the audit log)."""
    ranges: list[list[float]] = []
    for segment in recordings.segments(camera, start, end, limit=MAX_TIMELINE_SEGMENTS):
        if segment.end_wall <= segment.start_wall:
            continue
        if ranges and segment.start_wall - ranges[-1][1] <= CONTIGUOUS_S:
            ranges[-1][1] = max(ranges[-1][1], segment.end_wall)
        else:
            ranges.append([segment.start_wall, segment.end_wall])
    gaps = [{"start": g.start_wall, "end": g.end_wall if g.end_wall is not None else min(now, end),
             "cause": g.cause, "detail": g.detail}
            for g in recordings.gaps(camera, start, end, limit=MAX_TIMELINE_GAPS)]
    talk: list[dict[str, object]] = []
    open_talk: dict[str, object] | None = None
    for row in database.audit_between(("talk_start", "talk_stop"), camera, start - MAX_TALK_S, end):
        if open_talk is not None and (row.action == "talk_start" or row.user == open_talk["user"]):
            open_talk["end"] = row.at  # one talker at a time: a new start ends an unended one
            talk.append(open_talk)
            open_talk = None
        if row.action == "talk_start":
            open_talk = {"start": row.at, "end": None, "user": row.user}
    if open_talk is not None:
        open_talk["end"] = min(now, end, float(open_talk["start"]) + MAX_TALK_S)  # type: ignore[arg-type]
        talk.append(open_talk)
    talk = [t for t in talk if float(t["end"]) >= start]  # type: ignore[arg-type]
    return {"segments": ranges, "gaps": gaps, "talk": talk}
