"""Frames of every track in presentation order, each held at most a bounded time."""

from __future__ import annotations

import heapq
from collections import deque

from opticlink.sync.frame import MediaFrame


class FrameMerger:
    """Releases frames of all tracks in `pts_us` order.

    A frame goes out once every other track that sent something in the last `active` seconds has
    reached its presentation time, or once any held frame has waited `hold` seconds: a silent
    track delays the others by at most `hold`. Sans-IO: `now` is the caller's clock in seconds.
    """

    def __init__(self, hold: float = 0.25, active: float = 1.0) -> None:
        self.hold = hold
        self.active = active
        self._heap: list[tuple[int, int, MediaFrame]] = []
        self._deadlines: deque[tuple[float, int]] = deque()
        self._released: set[int] = set()
        self._latest: dict[int, tuple[int, float]] = {}
        self._count = 0
        self.out_of_order = 0
        self._last_out = -(1 << 62)

    def push(self, frame: MediaFrame, now: float) -> list[MediaFrame]:
        self._count += 1
        heapq.heappush(self._heap, (frame.pts_us, self._count, frame))
        self._deadlines.append((now + self.hold, self._count))
        latest = self._latest.get(frame.track)
        self._latest[frame.track] = (max(frame.pts_us, latest[0]) if latest else frame.pts_us, now)
        return self.poll(now)

    def deadline(self) -> float | None:
        self._trim()
        return self._deadlines[0][0] if self._deadlines else None

    def poll(self, now: float) -> list[MediaFrame]:
        out: list[MediaFrame] = []
        while self._heap:
            pts, count, frame = self._heap[0]
            self._trim()
            expired = bool(self._deadlines) and self._deadlines[0][0] <= now
            if not expired and not self._others_reached(frame.track, pts, now):
                break
            heapq.heappop(self._heap)
            self._released.add(count)
            if pts < self._last_out:
                self.out_of_order += 1
            self._last_out = max(self._last_out, pts)
            out.append(frame)
        return out

    def flush(self) -> list[MediaFrame]:
        out = [heapq.heappop(self._heap)[2] for _ in range(len(self._heap))]
        self._deadlines.clear()
        self._released.clear()
        return out

    def _others_reached(self, track: int, pts: int, now: float) -> bool:
        return all(latest >= pts for other, (latest, seen) in self._latest.items()
                   if other != track and now - seen <= self.active)

    def _trim(self) -> None:
        while self._deadlines and self._deadlines[0][1] in self._released:
            self._released.discard(self._deadlines.popleft()[1])
