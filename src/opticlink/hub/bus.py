"""A camera's frame bus: the camera session publishes each frame once; consumers subscribe.

The bus knows only `MediaFrame`. Each subscription has its own bounded queue and its own policy
for when that queue is full, so a slow consumer only costs itself:

- `skip`: drop queued video and wait for the next keyframe (a live view: late pictures are worth
  nothing, a picture that starts mid-GOP cannot be decoded); audio is kept up to its own bound.
- `gaps`: never drop silently: the frames that do not fit are counted as a `Gap` (first and last
  time, frames, bytes, reason), logged, and the queue resumes at the next video keyframe so what
  follows decodes (a recorder).

A consumer whose work per frame is short and never waits may instead take frames inline
(`subscribe_inline`): the bus calls it as it publishes, with no queue and no task woken per frame.
The live feed is one: it encodes a frame once and offers it to each viewer's own bounded queue, which
applies the `skip` policy per viewer. An inline consumer that raises is logged and counted; the
camera and the other consumers go on.

Filters are stages between the camera and some consumers (the echo-cancelled return path): a
frame passes through each filter at most once, and a subscription chooses whether it takes the
frames as the camera sent them or after a named filter. Publishing never blocks and never awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from opticlink.media import MediaFrame

log = logging.getLogger(__name__)

Policy = Literal["skip", "gaps"]
Filter = Callable[[MediaFrame, float], MediaFrame]

# A subscription's queue, unless it asks otherwise: 32 MiB is 20 s of a 12 Mbit/s 4K stream, and
# 10,000 frames are 100 s of 25 fps video with 50 audio frames a second.
MAX_QUEUE_BYTES = 32 << 20
MAX_QUEUE_FRAMES = 10_000
MAX_GAPS_KEPT = 256  # gaps a subscription remembers until its consumer takes them


@dataclass(slots=True)
class Gap:
    """Frames a `gaps` subscription could not keep: from `start_us` to `end_us` on the timeline."""

    start_us: int
    end_us: int
    frames: int = 0
    bytes: int = 0
    reason: str = "queue full"


@dataclass(slots=True)
class Queued:
    frame: MediaFrame
    published: float  # loop time when the bus got the frame


@dataclass(slots=True)
class Subscription:
    """One consumer's queue on the bus; its task awaits `get()`."""

    name: str
    policy: Policy = "skip"
    after: str | None = None  # the filter whose output it takes; None: frames as the camera sent them
    max_bytes: int = MAX_QUEUE_BYTES
    max_frames: int = MAX_QUEUE_FRAMES
    max_audio_delay: float = 2.0  # `skip`: the audio kept while video is skipped (seconds)
    dropped: int = 0  # frames not delivered, whatever the policy
    gaps: deque[Gap] = field(default_factory=lambda: deque(maxlen=MAX_GAPS_KEPT))
    closed: bool = False
    _queue: deque[Queued] = field(default_factory=deque)
    _bytes: int = 0
    _waiting_keyframe: bool = False
    _open_gap: Gap | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, frame: MediaFrame, now: float) -> None:
        """Queue `frame` (the bus calls this); past the bounds the policy decides what is lost."""
        if self.closed:
            return
        video = frame.kind == "video"
        if self._waiting_keyframe and video and not frame.keyframe:
            self._lose(frame)
            return
        if self._waiting_keyframe and (not video or not frame.keyframe) and self.policy == "gaps":
            self._lose(frame)  # a recorder's audio resumes with the picture, so the gap has one edge
            return
        if video and frame.keyframe:
            self._waiting_keyframe = False
            self._close_gap()
        size = len(frame.data)
        if self._bytes + size > self.max_bytes or len(self._queue) >= self.max_frames:
            if self.policy == "skip":
                self._skip_video(now)
            else:
                self._waiting_keyframe = True
                self._lose(frame)
                return
            if self._bytes + size > self.max_bytes or len(self._queue) >= self.max_frames:
                self._lose(frame)
                return
            if video and not frame.keyframe:
                self._lose(frame)
                return
        if self.policy == "skip":
            queue = self._queue
            while queue and queue[0].frame.kind == "audio" and now - queue[0].published > self.max_audio_delay:
                self._bytes -= len(queue.popleft().frame.data)
                self.dropped += 1
        self._queue.append(Queued(frame, now))
        self._bytes += size
        self._ready.set()

    def _skip_video(self, now: float) -> None:
        kept = deque(q for q in self._queue if q.frame.kind != "video")
        self.dropped += len(self._queue) - len(kept)
        self._queue = kept
        self._bytes = sum(len(q.frame.data) for q in kept)
        self._waiting_keyframe = True

    def _lose(self, frame: MediaFrame) -> None:
        self.dropped += 1
        if self.policy != "gaps":
            return
        gap = self._open_gap
        if gap is None:
            gap = self._open_gap = Gap(frame.pts_us, frame.pts_us)
            self.gaps.append(gap)
            log.warning("%s: queue full (%d frames, %d bytes): frames dropped until the next keyframe",
                        self.name, len(self._queue), self._bytes)
        gap.start_us = min(gap.start_us, frame.pts_us)
        gap.end_us = max(gap.end_us, frame.pts_us + frame.duration_us)
        gap.frames += 1
        gap.bytes += len(frame.data)

    def _close_gap(self) -> None:
        if self._open_gap is not None:
            gap = self._open_gap
            log.warning("%s: lost %d frames (%d bytes) over %.2f s of the timeline", self.name, gap.frames,
                        gap.bytes, (gap.end_us - gap.start_us) / 1e6)
            self._open_gap = None

    def take_gaps(self) -> list[Gap]:
        """The gaps since the last call (the one still open included, as it stands)."""
        out = list(self.gaps)
        self.gaps.clear()
        if self._open_gap is not None:
            self.gaps.append(self._open_gap)
        return out

    def get_nowait(self) -> list[Queued]:
        out = list(self._queue)
        self._queue.clear()
        self._bytes = 0
        return out

    async def get(self) -> list[Queued]:
        """Everything queued, waiting until there is something (empty once closed)."""
        while not self._queue and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


@dataclass(slots=True)
class InlineSubscription:
    """A consumer the bus calls as it publishes (`FrameBus.subscribe_inline`)."""

    name: str
    consumer: Callable[[MediaFrame, float], None]
    after: str | None = None
    errors: int = 0  # frames the consumer raised on
    closed: bool = False

    def offer(self, frame: MediaFrame, now: float) -> None:
        if self.closed:
            return
        try:
            self.consumer(frame, now)
        except Exception:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.exception("%s: a frame failed (%d so far)", self.name, self.errors)

    def close(self) -> None:
        self.closed = True


class FrameBus:
    """The frame bus of one camera."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.frames = 0
        self._filters: list[tuple[str, Filter]] = []
        self._subscriptions: list[Subscription | InlineSubscription] = []
        self._stages: list[tuple[str, Filter]] = []  # the filters some subscription takes the output of, or one before

    @property
    def subscriptions(self) -> tuple[Subscription | InlineSubscription, ...]:
        return tuple(self._subscriptions)

    def add_filter(self, name: str, stage: Filter) -> None:
        """A stage frames pass (in the order added) on their way to subscriptions `after` it."""
        if any(n == name for n, _ in self._filters):
            raise ValueError(f"a filter named {name!r} is already on the bus")
        self._filters.append((name, stage))
        self._plan()

    def subscribe(self, name: str, *, policy: Policy = "skip", after: str | None = None,
                  max_bytes: int = MAX_QUEUE_BYTES, max_frames: int = MAX_QUEUE_FRAMES) -> Subscription:
        self._check_filter(after)
        subscription = Subscription(name, policy, after, max_bytes, max_frames)
        self._subscriptions.append(subscription)
        self._plan()
        return subscription

    def subscribe_inline(self, name: str, consumer: Callable[[MediaFrame, float], None], *,
                         after: str | None = None) -> InlineSubscription:
        """`consumer(frame, now)` is called for each frame as it is published (it must not block)."""
        self._check_filter(after)
        subscription = InlineSubscription(name, consumer, after)
        self._subscriptions.append(subscription)
        self._plan()
        return subscription

    def _check_filter(self, after: str | None) -> None:
        if after is not None and all(n != after for n, _ in self._filters):
            raise ValueError(f"no filter named {after!r} on the bus")

    def unsubscribe(self, subscription: Subscription | InlineSubscription) -> None:
        subscription.close()
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self._plan()

    def _plan(self) -> None:
        """The filters a frame must pass: up to the last one a subscription takes the output of (worked
        out when subscriptions or filters change, not for every frame)."""
        needed = {s.after for s in self._subscriptions if s.after is not None}
        last = max((i for i, (name, _) in enumerate(self._filters) if name in needed), default=-1)
        self._stages = self._filters[:last + 1]

    def publish(self, frame: MediaFrame, now: float) -> None:
        """Offer `frame` to every subscription (the camera session calls this; it never blocks)."""
        self.frames += 1
        if not self._stages:  # no filter wanted: every subscription takes the frame as it came
            for subscription in self._subscriptions:
                subscription.offer(frame, now)
            return
        stages: dict[str | None, MediaFrame] = {None: frame}
        current = frame
        for name, stage in self._stages:
            current = stage(current, now)
            stages[name] = current
        for subscription in self._subscriptions:
            subscription.offer(stages[subscription.after], now)
