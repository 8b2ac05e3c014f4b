"""The receiving end of one RTP track: bytes and arrival times in, access units out (sans-IO)."""

from __future__ import annotations

from opticlink.errors import RtpParseError
from opticlink.media import AccessUnit
from opticlink.rtp.formats import Depacketizer, RtpFormat, create_depacketizer
from opticlink.rtp.jitterbuffer import BufferedPacket, JitterBuffer, Loss, Released
from opticlink.rtp.packet import RtpPacket
from opticlink.rtp.rtcp import ReportBlock, SenderReport, ntp_middle32
from opticlink.rtp.sequence import Unwrapper
from opticlink.rtp.statistics import ReceptionStatistics


class TrackReceiver:
    """Parses, counts, reorders and depacketizes one track's RTP packets.

    `receive()` takes a packet as it came off the network; `poll()` runs when `deadline()` comes
    (a gap in the jitter buffer gave up waiting). Packets of other payload types (comfort noise,
    DTMF) are counted and skipped. A new SSRC (a camera that restarted its encoder) flushes the
    old source and starts afresh; units carry the SSRC they came from, so the sync engine can
    re-anchor that track alone.
    """

    def __init__(self, fmt: RtpFormat, *, max_wait: float = 0.05) -> None:
        self.format = fmt
        self.depacketizer: Depacketizer = create_depacketizer(fmt)
        self.buffer = JitterBuffer(max_wait)
        self.stats = ReceptionStatistics(fmt.clock_rate)
        self.ssrc: int | None = None
        self.malformed = 0
        self.other_payload_types = 0
        self.ssrc_changes = 0
        self.units = 0
        self._seq = Unwrapper(16)
        self._last_sr: tuple[SenderReport, float] | None = None

    def receive(self, data: bytes, arrival: float) -> list[AccessUnit]:
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            self.malformed += 1
            return []
        if packet.payload_type != self.format.payload_type:
            self.other_payload_types += 1
            return []
        buffer = self.buffer
        if packet.ssrc == self.ssrc:  # the same source (every packet but a stream's first): no list to merge
            self.stats.on_packet(self._seq.unwrap(packet.sequence), packet.timestamp, arrival, len(data))
            released = buffer.push(packet, arrival)
            self.stats.late = buffer.late
            self.stats.duplicates = buffer.duplicates
            return self._release(released) if released else []
        out: list[AccessUnit] = []
        if self.ssrc is not None:  # a new source: the old one's units first
            out.extend(self._release(buffer.flush()))
            out.extend(self._stamp(self.depacketizer.flush()))
            self.depacketizer.loss()
            buffer.reset()
            self.stats.restart()
            self._seq.reset()
            self._last_sr = None
            self.ssrc_changes += 1
        self.ssrc = packet.ssrc
        self.stats.on_packet(self._seq.unwrap(packet.sequence), packet.timestamp, arrival, len(data))
        out.extend(self._release(buffer.push(packet, arrival)))
        self.stats.late = buffer.late
        self.stats.duplicates = buffer.duplicates
        return out

    def deadline(self) -> float | None:
        return self.buffer.deadline()

    def poll(self, now: float) -> list[AccessUnit]:
        return self._release(self.buffer.poll(now))

    def on_sender_report(self, report: SenderReport, arrival: float) -> None:
        """Remember the latest SR of our source, for LSR/DLSR in our receiver reports."""
        if report.ssrc == self.ssrc:
            self._last_sr = (report, arrival)

    def report_block(self, now: float) -> ReportBlock | None:
        """This track's block for an RTCP receiver report, or None before any packet."""
        if self.ssrc is None:
            return None
        lsr = dlsr = 0
        if self._last_sr is not None:
            report, arrival = self._last_sr
            lsr = ntp_middle32(report.ntp_timestamp)
            dlsr = max(0, int((now - arrival) * 65536))
        return self.stats.report_block(self.ssrc, lsr, dlsr)

    def _release(self, items: list[Released]) -> list[AccessUnit]:
        depacketizer = self.depacketizer
        if len(items) == 1 and type(items[0]) is BufferedPacket:  # one packet in order: the usual case
            units = depacketizer.push(items[0])
            return self._stamp(units) if units else units
        out: list[AccessUnit] = []
        for item in items:
            if isinstance(item, BufferedPacket):
                out.extend(depacketizer.push(item))
            elif isinstance(item, Loss):
                depacketizer.loss()
        return self._stamp(out)

    def _stamp(self, units: list[AccessUnit]) -> list[AccessUnit]:
        ssrc = self.ssrc or 0
        for unit in units:
            unit.ssrc = ssrc
        self.units += len(units)
        return units
