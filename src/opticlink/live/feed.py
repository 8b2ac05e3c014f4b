"""The live feed: one camera's frames from its bus to its viewers, never slowed by any of them.

The feed takes the camera's frames inline from its bus (`take`, after the echo-cancelling filter when
the camera has talkback), as they are published: no queue and no task of its own between the camera
and the viewers' queues. Each frame is encoded once and offered to every
viewer's bounded queue. A new viewer gets the codec configuration and the current group of pictures
(from the latest keyframe), so its picture starts at once. A viewer whose oldest queued video is
more than `max_delay` old, or whose queue holds more than `max_bytes`, loses its queued video and
skips to the next keyframe; its audio is kept (it is small and its loss is heard), up to the newest
`max_audio_delay` seconds. The camera session and the other viewers never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from opticlink.live.protocol import encode_config, encode_frame, track_description
from opticlink.media import CodecConfig, MediaFrame

# The group of pictures kept for a new viewer (from the latest keyframe on) is dropped past either
# cap, until the next keyframe: the viewer then waits for that keyframe instead. Cameras send a
# keyframe every 1-4 s, "smart codec" modes up to 10 s; 10 s of a 4K stream at 12 Mbit/s is 15 MB and
# 300 frames at 30 fps. Twice that is kept; a camera that sends one keyframe and then none would
# otherwise grow the cache for as long as it plays.
MAX_GOP_BYTES = 32 << 20
MAX_GOP_FRAMES = 600
# What players report of themselves (`LiveFeed.viewer_report`): a report each 2 s, so a latency older than
# this is from a player that stopped reporting; and a worklet cannot underrun 100 times in 2 s of sound.
REPORT_FRESH_S = 10.0
MAX_UNDERRUNS_PER_REPORT = 100


# Per-message hub latencies kept per camera for `/api/hub/latency`: 16 viewers of 75 messages a second for
# 30 s, in a preallocated array (a deque of Python floats this long grew a camera by 6 MB over its first hour).
LATENCY_SAMPLES = 1 << 16


class LatencyRing:
    """The latest `capacity` latencies (seconds) in a preallocated float32 array: the same memory from the
    first sample on. Iterating gives them oldest first."""

    def __init__(self, capacity: int) -> None:
        # Written through at once (np.full, not np.zeros): zeros come from calloc, whose untouched pages the
        # kernel maps only as samples reach them, so each watched camera's resident memory rose by up to the
        # ring's 256 KiB over its first minutes to hours of viewers, growth the soak (issue 15) counts.
        self._values = np.full(capacity, 0.0, np.float32)
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, values: list[float]) -> None:
        capacity = len(self._values)
        for value in values[-capacity:]:
            self._values[self._next] = value
            self._next = (self._next + 1) % capacity
        self._count = min(self._count + len(values), capacity)

    def array(self) -> np.ndarray:
        if self._count < len(self._values):
            return self._values[:self._count].copy()
        return np.concatenate((self._values[self._next:], self._values[:self._next]))

    def __iter__(self) -> Iterator[float]:
        return iter(self.array().tolist())

    def clear(self) -> None:
        self._next = self._count = 0


@dataclass(slots=True)
class Message:
    data: bytes | str  # str: a JSON text message (talk state)
    video: bool
    keyframe: bool
    published: float  # loop time when the hub got the frame
    audio: bool = False


@dataclass(slots=True)
class _Held:
    """A picture of the cached group, not encoded yet (nobody watched when it came)."""

    frame: MediaFrame
    sent: float | None
    published: float


class Viewer:
    """One viewer's queue; its sender task awaits `get()` and writes what it returns."""

    def __init__(self, name: str = "viewer", *, max_delay: float = 1.0, max_bytes: int = 8 << 20,
                 max_audio_delay: float = 2.0) -> None:
        self.name = name
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self.max_audio_delay = max_audio_delay
        self._queue: deque[Message] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self.waiting_keyframe = False
        self.dropped_video = 0
        self.dropped_audio = 0
        self.mute_audio = False  # half duplex: the talker does not hear the camera while talking
        self.talk_refusal: str | None = None  # why this viewer may not talk, whatever the camera allows (a role)
        self.rejected = 0  # talk frames refused
        self.sent = 0
        self.closed = False
        # what the viewer's player last reported (`LiveFeed.viewer_report`): its underruns so far, its latency
        self.underruns = 0
        self.latency_ms: float | None = None
        self.reported_at: float | None = None

    def offer(self, message: Message, now: float) -> None:
        if self.closed or (message.audio and self.mute_audio):
            return
        if message.video:
            if self.waiting_keyframe and not message.keyframe:
                self.dropped_video += 1
                return
            if message.keyframe:
                self.waiting_keyframe = False
        oldest_video = next((m for m in self._queue if m.video), None)
        if oldest_video is not None and (now - oldest_video.published > self.max_delay
                                         or self._bytes + len(message.data) > self.max_bytes):
            self._drop_video()
            if message.video and not message.keyframe:
                self.dropped_video += 1
                return
        queue = self._queue
        while queue and not queue[0].video and now - queue[0].published > self.max_audio_delay:
            self._bytes -= len(queue.popleft().data)
            self.dropped_audio += 1
        queue.append(message)
        self._bytes += len(message.data)
        self._ready.set()

    def offer_text(self, text: str, now: float) -> None:
        self.offer(Message(text, False, False, now), now)

    def _drop_video(self) -> None:
        kept = deque(m for m in self._queue if not m.video)
        self.dropped_video += len(self._queue) - len(kept)
        self._queue = kept
        self._bytes = sum(len(m.data) for m in kept)
        self.waiting_keyframe = True

    async def get(self) -> list[Message]:
        """Everything queued, waiting until there is something (empty once the viewer is closed)."""
        while not self._queue and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        out = list(self._queue)
        self._queue.clear()
        self._bytes = 0
        return out

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class LiveFeed:
    """The live fan-out of one camera: viewers, the GOP cache, frames encoded once in the wire format."""

    def __init__(self, camera: str, name: str = "", *, audio: bool = True) -> None:
        self.camera = camera
        self.name = name or camera
        self.audio = audio
        self.viewers: set[Viewer] = set()
        self.frames = 0
        self._configs: dict[int, tuple[str, CodecConfig]] = {}
        self._config_message: bytes | None = None
        self._gop: list[Message | _Held] = []
        self._gop_bytes = 0
        self.gop_overflows = 0  # times the cache passed a cap and was dropped until the next keyframe
        self.latencies = LatencyRing(LATENCY_SAMPLES)  # seconds from publish to socket write, the latest
        self.viewer_underruns = 0  # underruns the viewers' players reported, all viewers so far (monotonic)

    @property
    def gop_bytes(self) -> int:
        """Bytes of the cached group of pictures (at most `MAX_GOP_BYTES`)."""
        return self._gop_bytes

    def problems(self) -> list[str]:
        """What is wrong with the camera's picture stream as the hub sees it."""
        if not self.gop_overflows:
            return []
        return [f"no keyframe for over {MAX_GOP_FRAMES} frames or {MAX_GOP_BYTES >> 20} MiB "
                f"({self.gop_overflows} times): new viewers wait for the next keyframe"]

    def viewer_report(self, viewer: Viewer, underruns: int, latency_ms: float | None, now: float) -> None:
        """What `viewer`'s player says of itself (its audio underruns since it connected, its glass-to-glass
        latency), at monotonic time `now`: the camera's viewers' underruns add up in `viewer_underruns`. A
        count that goes down (a restarted player) is a new baseline; one report adds at most
        `MAX_UNDERRUNS_PER_REPORT` (a player reports every 2 s: more is a broken or hostile one)."""
        if underruns > viewer.underruns:
            self.viewer_underruns += min(underruns - viewer.underruns, MAX_UNDERRUNS_PER_REPORT)
        viewer.underruns = underruns
        viewer.latency_ms = latency_ms
        viewer.reported_at = now

    def worst_viewer_latency_ms(self, now: float) -> float | None:
        """The highest latency among the viewers who reported in the last `REPORT_FRESH_S`; None: none did."""
        fresh = [v.latency_ms for v in self.viewers if v.latency_ms is not None and v.reported_at is not None
                 and now - v.reported_at <= REPORT_FRESH_S]
        return max(fresh, default=None)

    @property
    def config_message(self) -> bytes | None:
        return self._config_message

    def take(self, frame: MediaFrame, now: float) -> None:
        """The bus's inline consumer (`FrameBus.subscribe_inline`): `publish` the frame as it comes."""
        self.publish(frame, now, now, time.time())

    def set_audio(self, audio: bool, now: float) -> None:
        """Send the camera's audio to the viewers, or stop at once. When it stops, the audio tracks leave
        the codec configuration, sent again to every viewer (a player then runs on the picture's clock
        instead of waiting for sound); when it resumes, they come back with the next audio frame."""
        if audio == self.audio:
            return
        self.audio = audio
        if audio or not any(kind == "audio" for kind, _ in self._configs.values()):
            return
        self._configs = {track: known for track, known in self._configs.items() if known[0] != "audio"}
        self._config_message = self._encode_configs()
        for viewer in self.viewers:
            viewer.offer(Message(self._config_message, False, False, now), now)

    def _encode_configs(self) -> bytes:
        return encode_config(self.camera, self.name, [
            track_description(track, kind, config) for track, (kind, config) in sorted(self._configs.items())])

    def publish(self, frame: MediaFrame, now: float, published: float | None = None,
                sent: float | None = None) -> None:
        """Offer a frame to every viewer (never blocks); `published`: when the bus got it (else `now`);
        `sent`: the Unix time the frame goes out, stamped in its header for the players' delivery
        jitter."""
        if frame.kind == "audio" and not self.audio:
            return
        self.frames += 1
        known = self._configs.get(frame.track)
        if known is None or known[1] is not frame.config:
            self._configs[frame.track] = (frame.kind, frame.config)
            self._config_message = self._encode_configs()
            config = Message(self._config_message, False, False, now)
            for viewer in self.viewers:
                viewer.offer(config, now)
        video = frame.kind == "video"
        published = now if published is None else published
        if not self.viewers:
            # nobody watches: a picture is only kept, as it is, for the next viewer's start (encoded then)
            if video:
                self._keep(_Held(frame, sent, published))
            return
        message = Message(encode_frame(frame, sent), video, frame.keyframe, published, audio=not video)
        if video:
            self._keep(message)
        for viewer in self.viewers:
            viewer.offer(message, now)

    def _keep(self, picture: Message | _Held) -> None:
        """Cache a picture of the group that starts at the latest keyframe (dropped past either cap)."""
        size = len(picture.data) if isinstance(picture, Message) else len(picture.frame.data)
        keyframe = picture.keyframe if isinstance(picture, Message) else picture.frame.keyframe
        if keyframe:
            self._gop = [picture]
            self._gop_bytes = size
        elif self._gop:
            self._gop_bytes += size
            self._gop.append(picture)
            if self._gop_bytes > MAX_GOP_BYTES or len(self._gop) > MAX_GOP_FRAMES:
                self._gop = []
                self._gop_bytes = 0
                self.gop_overflows += 1

    def attach(self, viewer: Viewer, now: float) -> None:
        """Start a viewer at the latest keyframe."""
        if self._config_message is not None:
            viewer.offer(Message(self._config_message, False, False, now), now)
        self._gop = [m if isinstance(m, Message) else Message(encode_frame(m.frame, m.sent), True, m.frame.keyframe,
                                                               m.published) for m in self._gop]
        for message in self._gop:
            viewer.offer(Message(message.data, True, message.keyframe, now), now)
        self.viewers.add(viewer)

    def broadcast(self, text: str, now: float) -> None:
        """A JSON text message to every viewer (who is talking)."""
        for viewer in self.viewers:
            viewer.offer(Message(text, False, False, now), now)

    def detach(self, viewer: Viewer) -> None:
        viewer.close()
        self.viewers.discard(viewer)

    def record_latency(self, messages: list[Message], now: float) -> None:
        self.latencies.extend([now - m.published for m in messages if not isinstance(m.data, str)])
