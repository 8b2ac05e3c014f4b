"""A recording run's first frames, held until the picture's placement is steady, then placed evenly.

In its first second or so the sync engine is still moving the picture toward the sound (a camera
whose first frames came late or in a burst leaves a correction of a hundred milliseconds or more).
A live viewer sees that as video catching up; a recording would keep it forever. So a run's first
frames are held until the engine's placement of the picture against the camera's own video clock
(its 90 kHz RTP timestamps) has stopped moving, and the held pictures are then placed by that clock
at the A/V relation the engine reached: even spacing, in sync from the first frame. Audio is left as
placed (the engine moves video, never the sound).
"""

from __future__ import annotations

import dataclasses

from opticlink.media import MediaFrame

SETTLE_S = 1.0  # frames are held at least this long (of timeline)
SETTLE_MAX_S = 5.0  # ... and at most this long, steady or not
STEADY_S = 0.5  # the placement is steady when over this long of pictures ...
STEADY_US = 1000  # ... it moved by at most this much (microseconds)
MAX_HELD = 1000  # frames held, whatever their span


class RunStart:
    """Holds a run's first frames; `push` returns them all, placed, once the placement is steady."""

    def __init__(self) -> None:
        self.held: list[MediaFrame] = []
        self._first_rtp: int | None = None
        self._relations: list[tuple[int, int]] = []  # (pts_us, pts_us - own clock) of held pictures

    def push(self, frame: MediaFrame) -> list[MediaFrame] | None:
        self.held.append(frame)
        if frame.kind == "video":
            if self._first_rtp is None:
                self._first_rtp = frame.rtp_timestamp
            self._relations.append((frame.pts_us, frame.pts_us - self._clock_us(frame)))
        span = frame.pts_us - self.held[0].pts_us
        if span >= SETTLE_MAX_S * 1e6 or len(self.held) >= MAX_HELD \
                or (span >= SETTLE_S * 1e6 and self._steady(frame.pts_us)):
            return self.place()
        return None

    def place(self) -> list[MediaFrame]:
        """The held frames, pictures placed by their own clock at the latest relation (ends the hold)."""
        held, self.held = self.held, []
        if not self._relations:
            return held
        relation = self._relations[-1][1]
        self._relations = []

        def moved(f: MediaFrame) -> MediaFrame:
            pts = self._clock_us(f) + relation
            return dataclasses.replace(f, pts_us=pts, dts_us=pts - (f.pts_us - f.decode_us))

        return [moved(f) if f.kind == "video" else f for f in held]

    def _clock_us(self, frame: MediaFrame) -> int:
        assert self._first_rtp is not None
        ticks = (frame.rtp_timestamp - self._first_rtp) & 0xFFFFFFFF
        return round((ticks - (1 << 32) if ticks >= 1 << 31 else ticks) * 1e6 / 90_000)

    def _steady(self, now_us: int) -> bool:
        """Whether the pictures of the last `STEADY_S` (of timeline) moved by at most `STEADY_US`."""
        if self._relations and now_us - self._relations[0][0] < STEADY_S * 1e6:
            return False
        recent = [r for pts, r in self._relations if pts >= now_us - STEADY_S * 1e6]
        return not recent or max(recent) - min(recent) <= STEADY_US
