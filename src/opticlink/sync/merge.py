"""Frames of every track interleaved by decode time, each track in the order it came, each frame
held at most a bounded time."""

from __future__ import annotations

from collections import deque

from opticlink.media import MediaFrame

MAX_HELD = 4096  # frames held across all tracks: past this the oldest go out whatever the others do


class FrameMerger:
    """Releases frames of all tracks interleaved by `decode_us`, never reordering a track.

    Each track's frames come in decode order (a video track with B-frames has presentation times
    that go back and forth; its decode times do not). The head of the track with the earliest
    decode time goes out once every other track that sent something in the last `active` seconds
    has reached that decode time, or once any held frame has waited `hold` seconds: a silent track
    delays the others by at most `hold`. Sans-IO: `now` is the caller's clock in seconds.
    """

    def __init__(self, hold: float = 0.25, active: float = 1.0) -> None:
        self.hold = hold
        self.active = active
        self._queues: dict[int, deque[tuple[float, MediaFrame]]] = {}
        self._latest: dict[int, tuple[int, float]] = {}
        self._held = 0
        self.out_of_order = 0  # frames released with a decode time before one already released
        self._last_out = -(1 << 62)

    def push(self, frame: MediaFrame, now: float) -> list[MediaFrame]:
        self._queues.setdefault(frame.track, deque()).append((now + self.hold, frame))
        self._held += 1
        dts = frame.decode_us
        latest = self._latest.get(frame.track)
        self._latest[frame.track] = (max(dts, latest[0]) if latest else dts, now)
        return self.poll(now)

    def deadline(self) -> float | None:
        heads = [q[0][0] for q in self._queues.values() if q]
        return min(heads) if heads else None

    def poll(self, now: float) -> list[MediaFrame]:
        out: list[MediaFrame] = []
        while self._held:
            track, (_due, frame) = min(((t, q[0]) for t, q in self._queues.items() if q),
                                      key=lambda item: (item[1][1].decode_us, item[1][0]))
            expired = (self.deadline() or now + 1) <= now or self._held > MAX_HELD
            if not expired and not self._others_reached(track, frame.decode_us, now):
                break
            self._queues[track].popleft()
            self._held -= 1
            if frame.decode_us < self._last_out:
                self.out_of_order += 1
            self._last_out = max(self._last_out, frame.decode_us)
            out.append(frame)
        return out

    def flush(self) -> list[MediaFrame]:
        out: list[MediaFrame] = []
        while self._held:
            track = min((t for t, q in self._queues.items() if q), key=lambda t: self._queues[t][0][1].decode_us)
            out.append(self._queues[track].popleft()[1])
            self._held -= 1
        return out

    def _others_reached(self, track: int, dts: int, now: float) -> bool:
        return all(latest >= dts for other, (latest, seen) in self._latest.items()
                   if other != track and now - seen <= self.active)
