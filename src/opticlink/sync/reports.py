"""RTP time to the camera's wall clock, from one source's series of RTCP Sender Reports.

A Sender Report pairs the sender's wall clock with its RTP clock at one instant, with no network
delay in between, so the series gives an exact mapping and the track clock's real rate. A report
is refused as bogus when its wall clock stands still or goes back while RTP time advances, when
it implies a clock rate more than 1000 ppm from nominal, or when it disagrees with the series by
more than a few milliseconds (a camera whose clock jumps).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class SenderReportInfo:
    """A Sender Report as received: camera wall clock (Unix seconds) at an RTP time, and when."""

    track: int
    ssrc: int
    wall_clock: float
    rtp_timestamp: int
    arrival: float


class BogusReport(Exception):
    """A Sender Report that cannot be trusted; the message says why."""


class ReportMapping:
    """Maps extended RTP timestamps of one source to the sender's wall clock (seconds).

    `nominal_rate` in ticks per second. The mapping is a least-squares line through the last
    `window` accepted reports: one report gives the nominal rate, more give the measured one.
    """

    MAX_SKEW = 1e-3  # 1000 ppm
    TOLERANCE = 0.003  # seconds a report may stray from the series

    def __init__(self, nominal_rate: int, window: int = 32) -> None:
        self.nominal_rate = nominal_rate
        self._points: deque[tuple[int, float]] = deque(maxlen=window)
        self._ts0 = 0
        self._wall0 = 0.0
        self._period = 1.0 / nominal_rate  # wall seconds per tick

    @property
    def ready(self) -> bool:
        return bool(self._points)

    @property
    def count(self) -> int:
        return len(self._points)

    @property
    def skew_ppm(self) -> float | None:
        """The RTP clock's rate against the sender's wall clock, in ppm from nominal."""
        if len(self._points) < 2:
            return None
        return (1.0 / (self._period * self.nominal_rate) - 1.0) * 1e6

    def wall_at(self, ts: int) -> float:
        """Wall clock (seconds) at extended RTP timestamp `ts`."""
        return self._wall0 + (ts - self._ts0) * self._period

    def add(self, ts: int, wall: float) -> None:
        """Accept a report, or raise `BogusReport` saying what is wrong with it."""
        if self._points:
            last_ts, last_wall = self._points[-1]
            dts, dwall = ts - last_ts, wall - last_wall
            if dts > 0 and dwall == 0:
                raise BogusReport("NTP time frozen while RTP time advances")
            if dts > 0 and dwall < 0:
                raise BogusReport(f"NTP time went back {-dwall * 1000:.1f} ms while RTP time advanced")
            if dts > 0:
                implied = (dts / dwall / self.nominal_rate - 1.0) * 1e6
                if abs(implied) > self.MAX_SKEW * 1e6:
                    raise BogusReport(f"reports imply a clock {implied:+.0f} ppm from nominal")
            error = wall - self.wall_at(ts)
            if len(self._points) >= 2 and abs(error) > self.TOLERANCE + 2 * self._period:
                raise BogusReport(f"report is {error * 1000:+.1f} ms off the series")
        self._points.append((ts, wall))
        self._fit()

    def reset(self) -> None:
        self._points.clear()

    def _fit(self) -> None:
        points = self._points
        n = len(points)
        self._ts0 = points[-1][0]
        if n == 1:
            self._wall0 = points[-1][1]
            self._period = 1.0 / self.nominal_rate
            return
        t_ref = points[0][0]
        mx = sum(t - t_ref for t, _ in points) / n
        my = sum(w for _, w in points) / n
        sxx = sum((t - t_ref - mx) ** 2 for t, _ in points)
        period = sum((t - t_ref - mx) * (w - my) for t, w in points) / sxx if sxx > 0 else 1.0 / self.nominal_rate
        nominal = 1.0 / self.nominal_rate
        period = max(nominal / (1 + self.MAX_SKEW), min(nominal / (1 - self.MAX_SKEW), period))
        self._period = period
        self._wall0 = my + (self._ts0 - t_ref - mx) * period
