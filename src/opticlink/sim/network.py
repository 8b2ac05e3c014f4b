"""The network between a simulated camera and its client, sans-IO: jitter, loss, reordering.

`deliver()` takes what the camera sends, in sending order, and returns when each part arrives
(or that it was lost). `ordered=True` models a TCP connection: nothing overtakes, so a late
packet holds back those behind it, and reordering can only come from the camera itself.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from opticlink.sim.camera import Emission


@dataclass(slots=True)
class Delivery:
    arrival: float
    emission: Emission


class NetworkModel:
    """Impairs a stream of emissions; all randomness comes from `seed`."""

    def __init__(self, jitter_ms: float = 0.0, loss_pct: float = 0.0, reorder_pct: float = 0.0, *,
                 base_delay_ms: float = 0.5, ordered: bool = True, seed: int = 1) -> None:
        self.jitter = jitter_ms / 1000
        self.loss = loss_pct / 100
        self.reorder = reorder_pct / 100
        self.base_delay = base_delay_ms / 1000
        self.ordered = ordered
        self._rng = random.Random(seed ^ 0x5EED)
        self._last_arrival = float("-inf")
        self._held: Emission | None = None
        self._queue: list[tuple[float, int, Emission]] = []
        self._counter = 0
        self.lost = 0
        self.reordered = 0

    def deliver(self, emissions: list[Emission]) -> None:
        """Queue emissions (in sending order)."""
        for emission in emissions:
            if self.loss and self._rng.random() < self.loss:
                self.lost += 1
                continue
            if self._held is not None:
                held, self._held = self._held, None
                self._enqueue(emission)
                self._enqueue(held, not_before=emission.send_time)
                continue
            if self.reorder and not emission.rtcp and self._rng.random() < self.reorder:
                self._held = emission
                self.reordered += 1
                continue
            self._enqueue(emission)

    def _enqueue(self, emission: Emission, not_before: float = float("-inf")) -> None:
        delay = self.base_delay + (self._rng.random() * self.jitter if self.jitter else 0.0)
        arrival = max(emission.send_time + delay, not_before)
        if self.ordered:
            arrival = max(arrival, self._last_arrival)
            self._last_arrival = arrival
        self._counter += 1
        heapq.heappush(self._queue, (arrival, self._counter, emission))

    def next_arrival(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def arrivals(self, now: float) -> list[Delivery]:
        """What has arrived by `now`, in arrival order."""
        out = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            arrival, _, emission = heapq.heappop(queue)
            out.append(Delivery(arrival, emission))
        return out
