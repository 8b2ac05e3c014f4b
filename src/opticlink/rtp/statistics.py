"""Reception statistics of one RTP source (RFC 3550 appendix A.3 and A.8) and its report block."""

from __future__ import annotations

from dataclasses import dataclass

from opticlink.rtp.rtcp import ReportBlock


@dataclass(slots=True)
class StatisticsSnapshot:
    """What a user reads: counts, loss and interarrival jitter (ms)."""

    packets: int
    bytes: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    late: int
    jitter_ms: float


class ReceptionStatistics:
    """Counts packets of one SSRC and estimates interarrival jitter.

    Fed each packet as it arrives from the network (before the jitter buffer) with its extended
    sequence number, RTP timestamp and arrival time in seconds.
    """

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.packets = 0
        self.bytes = 0
        self.duplicates = 0
        self.reordered = 0
        self.late = 0
        self.base_seq: int | None = None
        self.max_seq = 0
        self._jitter = 0.0  # RTP ticks, RFC 3550 A.8 estimator
        self._last_transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0
        self._expected_before = 0  # expected packets of earlier sources (before an SSRC change)

    def on_packet(self, ext_seq: int, rtp_timestamp: int, arrival: float, size: int) -> None:
        if self.base_seq is None:
            self.base_seq = ext_seq
            self.max_seq = ext_seq
        elif ext_seq > self.max_seq:
            self.max_seq = ext_seq
        else:
            self.reordered += 1
        self.packets += 1
        self.bytes += size
        transit = arrival * self.clock_rate - rtp_timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self._jitter += (d - self._jitter) / 16.0
        self._last_transit = transit

    def restart(self) -> None:
        """A new source (SSRC change): keep the totals, restart sequence and timing references."""
        self._expected_before = self.expected
        self.base_seq = None
        self.max_seq = 0
        self._last_transit = None

    @property
    def expected(self) -> int:
        current = 0 if self.base_seq is None else self.max_seq - self.base_seq + 1
        return self._expected_before + current

    @property
    def lost(self) -> int:
        return max(0, self.expected - (self.packets - self.duplicates))

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self._jitter / self.clock_rate

    def snapshot(self) -> StatisticsSnapshot:
        return StatisticsSnapshot(self.packets, self.bytes, self.expected, self.lost,
                                  self.duplicates, self.reordered, self.late, self.jitter_ms)

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """A report block for an RR; also starts the next interval for `fraction_lost`."""
        expected = self.expected
        received = self.packets - self.duplicates
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=expected - received,
            highest_sequence=self.max_seq & 0xFFFFFFFF,
            jitter=int(self._jitter),
            lsr=lsr,
            dlsr=dlsr,
        )
