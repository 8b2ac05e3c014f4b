"""Decode times of a video track whose frames arrive in decode order stamped with presentation times.

RTP carries only presentation times; with B-frames they go back and forth in the order frames are
sent. A decoder (and a muxer) needs each frame's decode time: increasing, never after its
presentation time. With a reorder depth of N frames (`rtp.formats.sps`), a frame's decode time is
the (N+1)-th largest presentation time seen so far, as FFmpeg's own demuxers derive it: for a
stream that reorders at most N frames that is strictly increasing and at most the frame's own
presentation time. The first N frames have fewer predecessors and are placed one frame period
apart before the earliest. Sans-IO: times are RTP ticks (unwrapped).

A depth the SPS does not declare is only an upper bound; after `LEARN_FRAMES` frames it is lowered
to the depth actually seen. A stream that reorders deeper than its depth raises the depth; the
frame that showed it gets the latest decode time that keeps the order (counted in `violations`).
"""

from __future__ import annotations

import bisect

from opticlink.rtp.formats.sps import MAX_REORDER, ReorderInfo

LEARN_FRAMES = 120  # frames after which an undeclared depth falls to the one observed (several GOPs)


class DecodeTimes:
    """Decode times, in ticks, for one track's frames in arrival (decode) order."""

    def __init__(self) -> None:
        self.depth = 0
        self.declared = True
        self.violations = 0
        self.observed = 0  # the deepest reordering seen
        self._largest: list[int] = []  # the MAX_REORDER + 1 largest presentation times, ascending
        self._last: int | None = None
        self._frames = 0

    def configure(self, info: ReorderInfo | None) -> None:
        """The reorder depth from the stream's SPS (None: unknown, learnt from the frames)."""
        if info is None:
            self.depth, self.declared = max(self.depth, self.observed), False
        else:
            self.depth, self.declared = info.depth, info.declared

    def reset(self) -> None:
        """The stream restarted: no history."""
        self._largest.clear()
        self._last = None
        self._frames = 0
        self.observed = 0

    def push(self, pts: int, period: int) -> int:
        """The decode time of the next frame, whose presentation time is `pts`; `period` is the
        frame period in ticks (used only for the stream's first frames)."""
        largest = self._largest
        reordered = len(largest) - bisect.bisect_right(largest, pts)  # frames before it shown after it
        if reordered > self.observed:
            self.observed = reordered
        if reordered > self.depth:
            self.depth = min(MAX_REORDER, reordered)
            self.violations += 1
        bisect.insort(largest, pts)
        if len(largest) > MAX_REORDER + 1:
            del largest[0]
        self._frames += 1
        if not self.declared and self._frames == LEARN_FRAMES:
            self.depth = self.observed
        seen = len(largest)
        if seen > self.depth:
            dts = largest[seen - 1 - self.depth]
        else:
            dts = largest[0] - (self.depth + 1 - seen) * max(1, period)
        if self._last is not None and dts <= self._last:
            dts = self._last + 1
        if dts > pts:
            dts = pts  # only a stream that broke its own depth gets here
        self._last = dts
        return dts
