"""Playback of a recording as a paced stream (sans-IO): what a player would have received live.

`PlaybackSource` pulls `RecordedFrame`s from a reader (`open_reader(wall)`: an iterator starting at
the last keyframe at or before `wall`, as `record.reader.read_frames`) and gives each frame when its
time comes, against the `now` (seconds, monotonic) its adapter passes: `poll(now)` returns what is
due, `next_due()` when to call again. Commands: `play`, `pause`, `seek`, `set_speed`.

**The player's clock.** Frames are re-stamped on one playback-session clock: a frame's new `pts_us`
is the session time (µs since the source began) at which it is due to be shown, so presentation
times run on in real time across seeks, pauses, speed changes and runs, and a recording played at 1×
looks to the player exactly like a live camera (frames arrive when they are due, `now - pts`
constant). Within a stretch (from a seek, or the start of a run) session time is
`anchor + (media - anchor_media) / speed`. A new run (a gap in the recording: the reader's `run`
changes) starts a new stretch right after the previous frame: the gap is jumped, not waited for.
`wall_clock` of each frame is its recorded wall time, so the page can say what it shows.

**Seeking** (also the start, and `play` after a pause or a speed change, which restart at the
current position): the reader restarts at the keyframe before the target `T`; the frames from that
keyframe to the *poster* (the last video frame recorded at or before `T`) are sent at once, stamped
before the anchor, so the decoder reaches the poster; a `Reset` event tells the page the poster's
session time (the player drops what decodes before it and shows the poster at once, even paused).
Audio from before the poster is dropped. Then frames are paced from the poster on.

**Speeds**: 0.5×, 1×, 2×, 4×. Audio goes out at 1× only (no pitch-kept time stretching): at other
speeds the configuration carries no audio track, so the player runs on the picture's clock, as a
live camera without sound. Above 2× only keyframes are sent (a decoder that keeps up with 4× of a
4K stream cannot be counted on); between them the picture holds.

**Lead** (`set_lead`): a player slaved to another's clock (synchronized playback of several cameras)
may need its pictures before their time, to line up with a leader that plays them later than it
would; with a lead, frames go out that much before they are due, their times unchanged. The player
holds them (decoded) until its clock reaches them.

G.711 and L16 audio read back in long packets is cut into pieces of at most `AUDIO_PIECE_MS`, as a
camera sends it, so the player's jitter estimate sees a camera's packets, not a file's chunks.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from opticlink.media import AudioConfig, CodecConfig, MediaFrame

SPEEDS = (0.5, 1.0, 2.0, 4.0)
KEYFRAMES_ONLY_ABOVE = 2.0  # speeds above this send keyframes only
AUDIO_PIECE_MS = 20
POSITION_EVERY_S = 0.25  # position reports while playing
MAX_PREROLL_FRAMES = 1200  # frames scanned from the keyframe to the seek target (a 10 s GOP at 60 fps, doubled)
MAX_PREROLL_BYTES = 64 << 20
MAX_FRAMES_PER_POLL = 400  # a poll gives at most this many (the adapter calls again at once)
MAX_BEHIND_S = 1.0  # fallen further behind than this (a stalled reader): re-anchor instead of a burst
MAX_STRETCH_JUMP_US = 10_000_000  # a jump of media time within a run larger than this starts a new stretch
RETRY_S = 1.0  # at the end of what is recorded (the reader reopened at once found nothing more): look this often ...
END_WAIT_S = 5.0  # ... for this long before the playback ends
MAX_LEAD_S = 1.0  # frames are sent at most this long before they are due (`set_lead`)


class Recorded(Protocol):
    """What the reader gives (`record.reader.RecordedFrame`)."""

    frame: MediaFrame
    wall: float
    run: int


OpenReader = Callable[[float], Iterator[Recorded]]


@dataclass(slots=True)
class Reset:
    """The stream restarts (a seek): drop what was decoded and show the frame at `pts_us` at once."""

    pts_us: float
    wall: float  # recorded wall time of that frame (the seek target when there is none)
    speed: float
    state: str


@dataclass(slots=True)
class Config:
    """The tracks the player should decode now: track -> (kind, codec configuration)."""

    tracks: dict[int, tuple[str, CodecConfig]]


@dataclass(slots=True)
class Frame:
    frame: MediaFrame  # re-stamped: pts_us/dts_us on the session clock; wall_clock: recorded wall time


@dataclass(slots=True)
class Position:
    wall: float


@dataclass(slots=True)
class State:
    state: str  # "playing", "paused", "ended"
    speed: float
    reason: str | None = None


Event = Reset | Config | Frame | Position | State


class PlaybackSource:
    """One viewer's playback of one camera's recording (see the module's docstring)."""

    def __init__(self, open_reader: OpenReader, start_wall: float, now: float, *, speed: float = 1.0,
                 playing: bool = True) -> None:
        if speed not in SPEEDS:
            raise ValueError(f"speed {speed} is not one of {SPEEDS}")
        self._open = open_reader
        self._t0 = now
        self.speed = speed
        self.state = "paused"
        self.position = start_wall  # wall time of the latest picture given
        self._events: list[Event] = []
        self._reader: Iterator[Recorded] | None = None
        self._pending: list[tuple[int, int, Recorded]] = []  # a heap by decode time (cut audio merged in)
        self._order = itertools.count()
        self._read_decode = -(1 << 62)  # decode time of the latest frame taken from the reader
        self._configs: dict[int, tuple[str, CodecConfig]] = {}
        self._sent_configs: dict[int, tuple[str, CodecConfig]] | None = None
        self._anchor_media = 0
        self._anchor_session = 0.0
        self._run: int | None = None
        self._last_media: dict[tuple[int, int], int] = {}  # (run, track) -> decode media time given
        self._last_session = 0.0  # session µs of the latest frame given, plus its duration
        self._last_decode: int | None = None  # media decode time of the latest frame given
        self._last_position_at = -math.inf
        self._exhausted_at: float | None = None
        self._retry_at = 0.0
        self.frames_sent = 0
        self.lead_us = 0.0
        self._seek(start_wall, now, playing)

    # commands

    def play(self, now: float) -> None:
        if self.state != "playing":
            self._seek(self.position, now, True)

    def pause(self, now: float) -> None:
        if self.state == "playing":
            self.state = "paused"
            self._events.append(State("paused", self.speed))
            self._events.append(Position(self.position))

    def seek(self, wall: float, now: float) -> None:
        self._seek(wall, now, self.state == "playing")

    def set_speed(self, speed: float, now: float) -> None:
        if speed not in SPEEDS:
            raise ValueError(f"speed {speed} is not one of {SPEEDS}")
        if speed == self.speed:
            return
        self.speed = speed
        if self.state == "playing":
            self._seek(self.position, now, True)  # the configuration (audio or not) and the anchor change
        else:
            self._events.append(State(self.state, speed))

    def set_lead(self, seconds: float) -> None:
        """Send frames `seconds` (0 to MAX_LEAD_S) before they are due from now on; their times stay."""
        if not 0.0 <= seconds <= MAX_LEAD_S:
            raise ValueError(f"lead {seconds} s is not within 0 to {MAX_LEAD_S} s")
        self.lead_us = seconds * 1e6

    # pacing

    def session_us(self, now: float) -> float:
        """The session clock at `now` (µs)."""
        return (now - self._t0) * 1e6

    def next_due(self) -> float | None:
        """When `poll` has something to give (a monotonic time, maybe already past), None: not until a
        command."""
        if self._events:
            return -math.inf
        if self.state != "playing":
            return None
        if self._exhausted_at is not None:
            return self._retry_at
        head = self._peek()
        if head is None:
            return self._retry_at
        return self._t0 + (self._due(head) - self.lead_us) / 1e6

    def poll(self, now: float) -> list[Event]:
        """Everything due by `now`."""
        events, self._events = self._events, []
        if self.state == "playing":
            self._pace(now, events)
        return events

    def _pace(self, now: float, events: list[Event]) -> None:
        given = 0
        while given < MAX_FRAMES_PER_POLL:
            if self._exhausted_at is not None and (now < self._retry_at or not self._continue(now)):
                if now - self._exhausted_at >= END_WAIT_S:
                    self.state = "ended"
                    events.append(Position(self.position))
                    events.append(State("ended", self.speed, "the end of what is recorded"))
                return
            head = self._peek()
            if head is None:  # the reader's files end here: reopened at once, they may hold what was recorded since
                self._exhausted_at = now
                self._retry_at = now
                continue
            if self._run != head.run or (self._last_decode is not None
                                         and abs(head.frame.decode_us - self._last_decode) > MAX_STRETCH_JUMP_US):
                self._new_stretch(head, now)
            due = self._due(head)
            if due > self.session_us(now) + self.lead_us:
                break
            heapq.heappop(self._pending)
            behind = self.session_us(now) - due
            if behind > MAX_BEHIND_S * 1e6:  # the reader stalled: carry on from now, not in a burst
                self._anchor_session += behind
            self._give(head, events)
            given += 1
        if events and now - self._last_position_at >= POSITION_EVERY_S:
            self._last_position_at = now
            events.append(Position(self.position))

    # internals

    def _due(self, recorded: Recorded) -> float:
        return self._anchor_session + (recorded.frame.decode_us - self._anchor_media) / self.speed

    def _new_stretch(self, recorded: Recorded, now: float) -> None:
        """A new run (or a jump in media time): it starts right after the last frame given."""
        self._run = recorded.run
        self._anchor_media = recorded.frame.decode_us
        current = self.session_us(now)
        self._anchor_session = self._last_session if current - self._last_session < MAX_BEHIND_S * 1e6 else current

    def _wanted(self, recorded: Recorded) -> bool:
        frame = recorded.frame
        if frame.kind == "audio":
            return self.speed == 1.0
        return frame.keyframe or self.speed <= KEYFRAMES_ONLY_ABOVE

    def _peek(self) -> Recorded | None:
        """The next frame to pace (unwanted ones skipped, long PCM cut), or None at the reader's end."""
        while True:
            if self._pending and (self._reader is None or self._pending[0][0] <= self._read_decode):
                head = self._pending[0][2]  # nothing the reader still holds comes before it
                if self._wanted(head):
                    return head
                heapq.heappop(self._pending)
                continue
            recorded = self._next()
            if recorded is None:
                if self._pending:
                    continue
                return None
            self._push(recorded)

    def _push(self, recorded: Recorded) -> None:
        for piece in _pieces(recorded):
            heapq.heappush(self._pending, (piece.frame.decode_us, next(self._order), piece))

    def _next(self) -> Recorded | None:
        """The reader's next frame, leaving out what an earlier reader of this playback already gave."""
        while self._reader is not None:
            try:
                recorded = next(self._reader)
            except StopIteration:
                self._reader = None
                return None
            key = (recorded.run, recorded.frame.track)
            self._read_decode = recorded.frame.decode_us
            if recorded.frame.decode_us <= self._last_media.get(key, -(1 << 62)):
                continue
            return recorded
        return None

    def _give(self, recorded: Recorded, events: list[Event], pts_us: float | None = None) -> None:
        frame = recorded.frame
        track = (frame.kind, frame.config)
        if self._configs.get(frame.track) != track:
            self._configs[frame.track] = track
        if frame.kind == "audio" and self.speed != 1.0:
            return
        if self._sent_configs != self._visible_configs():
            self._sent_configs = self._visible_configs()
            events.append(Config(dict(self._sent_configs)))
        session = self._anchor_session + (frame.pts_us - self._anchor_media) / self.speed if pts_us is None \
            else pts_us
        dts = self._anchor_session + (frame.decode_us - self._anchor_media) / self.speed if pts_us is None \
            else pts_us - (frame.pts_us - frame.decode_us) / self.speed
        stamped = replace(frame, pts_us=round(session), dts_us=round(dts), wall_clock=recorded.wall,
                          duration_us=round(frame.duration_us / self.speed))
        events.append(Frame(stamped))
        self.frames_sent += 1
        self._last_media[(recorded.run, frame.track)] = frame.decode_us
        self._last_decode = frame.decode_us
        self._last_session = max(self._last_session, dts + max(stamped.duration_us, 1000))
        if frame.kind == "video" or not any(kind == "video" for kind, _ in self._configs.values()):
            self.position = recorded.wall

    def _visible_configs(self) -> dict[int, tuple[str, CodecConfig]]:
        return {track: known for track, known in sorted(self._configs.items())
                if known[0] == "video" or self.speed == 1.0}

    def _continue(self, now: float) -> bool:
        """At the end of the reader: look for frames recorded since (the live edge) from the position on."""
        self._retry_at = now + RETRY_S
        try:
            self._reader = self._open(self.position)
        except ValueError:
            self._reader = None
        if self._peek() is None:
            return False
        self._exhausted_at = None
        return True

    def _seek(self, wall: float, now: float, playing: bool) -> None:
        self._events.clear()  # what an earlier command left unsent is superseded
        self._pending.clear()
        self._read_decode = -(1 << 62)
        self._last_media.clear()
        self._last_decode = None
        self._exhausted_at = None
        self._sent_configs = None
        try:
            self._reader = self._open(wall)
        except ValueError:  # nothing recorded at or after `wall`
            self._reader = None
        preroll, poster = self._preroll(wall)
        self._anchor_session = max(self.session_us(now), self._last_session)
        self._last_session = self._anchor_session
        if poster is None:
            self.state = "ended"
            self.position = wall
            self._events += [Reset(self._anchor_session, wall, self.speed, "ended"), Position(wall),
                             State("ended", self.speed, "nothing recorded at or after this time")]
            return
        self._run = poster.run
        self._anchor_media = poster.frame.pts_us
        self.state = "playing" if playing else "paused"
        self._events.append(Reset(self._anchor_session, poster.wall, self.speed, self.state))
        for recorded in [*preroll, *(r for _, _, r in self._pending)]:  # every track known so far, in one configuration
            self._configs[recorded.frame.track] = (recorded.frame.kind, recorded.frame.config)
        self._sent_configs = self._visible_configs()
        self._events.append(Config(dict(self._sent_configs)))
        for recorded in preroll:  # the decoder's way to the poster, all at once
            frame = recorded.frame
            if frame.kind == "video" or recorded is poster:
                self._give(recorded, self._events)
            elif frame.pts_us >= poster.frame.pts_us:
                self._push(recorded)  # sound of the poster's time on: paced
        self.position = poster.wall
        self._events.append(Position(poster.wall))
        self._events.append(State(self.state, self.speed))
        self._last_position_at = now

    def _preroll(self, wall: float) -> tuple[list[Recorded], Recorded | None]:
        """The frames from the reader's keyframe up to the first picture recorded after `wall` (that
        picture and what follows stay pending), and the poster: the last picture at or before `wall`
        (else the first after it)."""
        preroll: list[Recorded] = []
        size = 0
        while len(preroll) < MAX_PREROLL_FRAMES and size < MAX_PREROLL_BYTES:
            recorded = self._next()
            if recorded is None:
                break
            frame = recorded.frame
            decode_wall = recorded.wall + (frame.decode_us - frame.pts_us) / 1e6
            if frame.kind == "video" and decode_wall > wall:
                if not any(r.frame.kind == "video" for r in preroll):
                    preroll.append(recorded)  # nothing recorded before `wall`: the first picture after it
                else:
                    self._push(recorded)
                break
            if frame.kind == "audio" and recorded.wall > wall + 2.0 \
                    and not any(r.frame.kind == "video" for r in preroll):  # a camera without pictures
                self._push(recorded)
                break
            if frame.kind == "video" and frame.keyframe:  # a later keyframe still before `wall`: start there
                preroll = [r for r in preroll if r.frame.kind == "audio"]
                size = 0
            preroll.append(recorded)
            size += len(frame.data)
        videos = [r for r in preroll if r.frame.kind == "video"]
        if not videos:
            audio = [r for r in preroll if r.frame.kind == "audio"]  # a camera without pictures
            if not audio:
                return [], None
            poster = max((r for r in audio if r.wall <= wall), default=audio[0], key=lambda r: r.frame.pts_us)
            return [r for r in audio if r is not poster] + [poster], poster
        poster = max(videos, key=lambda r: r.frame.pts_us)
        return preroll, poster


def _pieces(recorded: Recorded) -> list[Recorded]:
    """A long G.711 or L16 frame cut into pieces of at most `AUDIO_PIECE_MS` (else the frame as it is)."""
    frame = recorded.frame
    config = frame.config
    if frame.kind != "audio" or not isinstance(config, AudioConfig) or not config.sample_bytes:
        return [recorded]
    step = config.sample_rate * AUDIO_PIECE_MS // 1000 * config.sample_bytes
    if step <= 0 or len(frame.data) <= step:
        return [recorded]
    out: list[Recorded] = []
    bytes_per_sample = config.sample_bytes
    for offset in range(0, len(frame.data) - len(frame.data) % bytes_per_sample, step):
        data = frame.data[offset:offset + step]
        shift = round(offset // bytes_per_sample * 1e6 / config.sample_rate)
        piece = replace(frame, data=data, pts_us=frame.pts_us + shift, dts_us=frame.decode_us + shift,
                        duration_us=round(len(data) // bytes_per_sample * 1e6 / config.sample_rate))
        out.append(_Piece(piece, recorded.wall + shift / 1e6, recorded.run))
    return out


@dataclass(slots=True)
class _Piece:
    frame: MediaFrame
    wall: float
    run: int
