"""Talk timestamps in step with real time, sans-IO.

A camera's speaker plays by RTP timestamp from a small jitter buffer anchored at the first packet.
Talk frames come from a browser whose pace we do not control: a pause (push-to-talk let go), a
stalled network or a slow sender leaves timestamps behind real time, and the camera would play
the next words late or into its past. `TalkPacer` gives every frame its slot on the receiver
clock: frames within `late` of their slot run on contiguously; a later frame skips the timestamp
forward (a new talkspurt, RFC 3551 §4.1) to start at its arrival; a frame more than `ahead` early
(a burst after a stall) is dropped, so the camera's buffer, and the talker's latency, do not grow.
The slot is also where the echo canceller places what was sent: it is when the camera plays it,
give or take a constant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Placement:
    """Where a frame goes: `skip` samples of silence first, its first sample at `slot` (seconds)."""

    skip: int
    slot: float


class TalkPacer:
    """Slots for frames arriving at receiver-clock times; `rate` is the camera's sample rate."""

    def __init__(self, rate: int, *, late: float = 0.06, ahead: float = 0.12) -> None:
        self.rate = rate
        self.late = late
        self.ahead = ahead
        self.anchor: float | None = None  # receiver time of sample 0
        self.count = 0  # samples placed since the anchor (skips included)
        self.skips = 0
        self.dropped = 0

    def place(self, now: float) -> Placement | None:
        """Place a frame that arrived at `now`; None: drop it. Call `advance` with what was sent."""
        if self.anchor is None:
            self.anchor, self.count = now, 0
            return Placement(0, now)
        slot = self.anchor + self.count / self.rate
        lag = now - slot
        if lag > self.late:
            skip = round(lag * self.rate)
            self.count += skip
            self.skips += 1
            return Placement(skip, self.anchor + self.count / self.rate)
        if lag < -self.ahead:
            self.dropped += 1
            return None
        return Placement(0, slot)

    def advance(self, samples: int) -> None:
        self.count += samples
