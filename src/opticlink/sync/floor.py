"""Lower-envelope line estimation: the delay floor under jittery arrivals, with clock skew.

Arrivals are capture times plus delays that are never negative (network, queueing, encoding).
Plotted against media time, `arrival - media_time` lies on or above a straight line whose
slope is the clock skew and whose height is the smallest delay. The first packet's arrival, or
an average, would carry the jitter into the timeline; the floor does not.
"""

from __future__ import annotations

from collections import deque


class FloorEstimator:
    """Estimates the line y = a + b·(x - x0) under samples y_i = a + b·(x_i - x0) + d_i, d_i ≥ 0.

    x and y in seconds. The minimum of each `bucket` seconds of x is kept for `window` seconds;
    a least-squares line through those minima (refitted without the ones more than `outlier`
    above it) is lowered to pass under the last `recent` minima. The slope stays 0 until the
    minima span `min_span` seconds and is clamped to ±`max_slope` (1000 ppm: no camera clock is
    that far off). Until the first bucket closes, the floor is the running minimum.
    """

    def __init__(self, bucket: float = 1.0, window: float = 120.0, min_span: float = 8.0,
                 max_slope: float = 1e-3, outlier: float = 0.004, recent: int = 8) -> None:
        self.bucket = bucket
        self.window = window
        self.min_span = min_span
        self.max_slope = max_slope
        self.outlier = outlier
        self.recent = recent
        self.reset()

    def reset(self) -> None:
        self._x0: float | None = None
        self._minima: deque[tuple[float, float]] = deque()
        self._bucket_start = 0.0
        self._bucket_min: tuple[float, float] | None = None
        self.intercept: float | None = None  # floor at x0
        self.slope = 0.0
        self.samples = 0

    @property
    def ready(self) -> bool:
        return self.intercept is not None

    def add(self, x: float, y: float) -> None:
        self.samples += 1
        if self._x0 is None:
            self._x0 = x
            self._bucket_start = x
        rel = x - self._x0
        if rel >= self._bucket_start - self._x0 + self.bucket or rel < self._bucket_start - self._x0 - self.bucket:
            self._close_bucket()
            self._bucket_start = x
        if self._bucket_min is None or y < self._bucket_min[1]:
            self._bucket_min = (rel, y)
        if not self._minima:  # no fit yet: the running minimum is the floor
            self.intercept = self._bucket_min[1]

    def value(self, x: float) -> float | None:
        """The floor at `x`, or None before any sample."""
        if self.intercept is None or self._x0 is None:
            return None
        return self.intercept + self.slope * (x - self._x0)

    def _close_bucket(self) -> None:
        if self._bucket_min is None:
            return
        minima = self._minima
        minima.append(self._bucket_min)
        self._bucket_min = None
        newest = minima[-1][0]
        while minima and minima[0][0] < newest - self.window:
            minima.popleft()
        self._fit()

    def _fit(self) -> None:
        points = list(self._minima)
        span = points[-1][0] - points[0][0]
        if len(points) < 3 or span < self.min_span:
            slope = 0.0
            intercept = min(y for _, y in points)
        else:
            slope, intercept = _least_squares(points)
            kept = [(x, y) for x, y in points if y - (intercept + slope * x) <= self.outlier]
            if len(kept) >= 3:
                slope, intercept = _least_squares(kept)
            slope = max(-self.max_slope, min(self.max_slope, slope))
            intercept = min(y - slope * x for x, y in points[-self.recent :])
        self.slope = slope
        self.intercept = intercept


def _least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx
