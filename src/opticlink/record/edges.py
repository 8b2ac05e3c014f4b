"""A recording run's edges: its first frames placed once the sync is steady, its last cut at a whole picture.

**Start.** In its first second or so the sync engine is still moving the picture toward the sound (a
camera whose first frames came late or in a burst leaves a correction of a hundred milliseconds or
more). A live viewer sees that as video catching up; a recording would keep it forever. So a run's
first frames are held until the engine's placement of the picture against the camera's own video
clock (its 90 kHz RTP timestamps) has stopped moving, and the held pictures are then placed by that
clock at the A/V relation the engine reached: even spacing, in sync from the first frame. Audio is
left as placed (the engine moves video, never the sound).

**End.** Pictures with B-frames come in decode order: a stream stopped at any moment may end with a
reference picture whose B-frames (shown before it) never came, a hole of two frames before the last
picture. The last `TAIL_S` of frames are held; at the end, the pictures from the first one that would
leave such a hole (and every picture after it in decode order, which may refer to it) are dropped.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from opticlink.media import MediaFrame

TAIL_S = 0.3  # the frames held at the end, to cut at a whole picture
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


class RunEnd:
    """Holds a run's latest `TAIL_S` of frames: `push` returns those older, `close` the rest, cut at a
    whole picture."""

    def __init__(self) -> None:
        self.held: deque[MediaFrame] = deque()
        self._shown_until: int | None = None  # the latest presentation time of a picture let go

    def push(self, frame: MediaFrame) -> list[MediaFrame]:
        self.held.append(frame)
        out = []
        while self.held and frame.pts_us - self.held[0].pts_us > TAIL_S * 1e6:
            out.append(self._let_go(self.held.popleft()))
        return out

    def close(self) -> list[MediaFrame]:
        """The held frames, without the pictures that would end the run with a hole."""
        held, self.held = list(self.held), deque()
        pictures = sorted(f.pts_us for f in held if f.kind == "video")
        shown = self._shown_until
        cut: int | None = None  # pictures shown from this time on would follow a hole
        for pts in pictures:
            period = next(f.duration_us for f in held if f.kind == "video" and f.pts_us == pts)
            if shown is not None and period > 0 and pts - shown > 1.5 * period:
                cut = pts
                break
            shown = pts if shown is None else max(shown, pts)
        if cut is None:
            return held
        first = next(i for i, f in enumerate(held) if f.kind == "video" and f.pts_us >= cut)
        return held[:first] + [f for f in held[first:] if f.kind != "video"]

    def _let_go(self, frame: MediaFrame) -> MediaFrame:
        if frame.kind == "video":
            self._shown_until = frame.pts_us if self._shown_until is None else max(self._shown_until, frame.pts_us)
        return frame
