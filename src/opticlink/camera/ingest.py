"""A camera session's receiving side, sans-IO: RTP and RTCP per track in, access units out.

Routes each track's packets to its `TrackReceiver`, keeps the Sender Reports that later map RTP
time to the camera's wall clock, and builds the RTCP receiver reports a camera expects back
(RFC 3550 section 6.4.2), every `rr_interval` seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opticlink.errors import RtcpParseError
from opticlink.media import AccessUnit
from opticlink.rtp.receiver import TrackReceiver
from opticlink.rtp.rtcp import (
    NTP_EPOCH_OFFSET,
    Goodbye,
    ReceiverReport,
    SenderReport,
    SourceDescription,
    parse_rtcp,
    serialize_rtcp,
)
from opticlink.rtsp.client import Track
from opticlink.sync.reports import SenderReportInfo


@dataclass(slots=True)
class TrackState:
    track: Track
    receiver: TrackReceiver
    first_report: SenderReportInfo | None = None
    last_report: SenderReportInfo | None = None
    reports: int = 0
    goodbyes: int = 0


class CameraIngest:
    """Receives every live track of one camera session."""

    def __init__(self, tracks: list[Track], *, jitter_wait: float = 0.05, rr_interval: float = 1.0,
                 cname: str = "opticlink", ssrc: int | None = None) -> None:
        self.states: dict[int, TrackState] = {
            t.index: TrackState(t, TrackReceiver(t.format, max_wait=jitter_wait))
            for t in tracks if not t.backchannel
        }
        self.rr_interval = rr_interval
        self.cname = cname
        self.ssrc = ssrc if ssrc is not None else random.randrange(1, 1 << 32)
        self.malformed_rtcp = 0
        self._next_rr: float | None = None

    def on_rtp(self, track: int, data: bytes, now: float) -> list[tuple[int, AccessUnit]]:
        state = self.states.get(track)
        if state is None:
            return []
        if self._next_rr is None:
            self._next_rr = now + self.rr_interval
        units = state.receiver.receive(data, now)
        return [(track, unit) for unit in units] if units else []

    def on_rtcp(self, track: int, data: bytes, now: float) -> list[SenderReportInfo]:
        """Parse a compound RTCP packet; returns the Sender Reports it carried."""
        state = self.states.get(track)
        if state is None:
            return []
        try:
            packets = parse_rtcp(data)
        except RtcpParseError:
            self.malformed_rtcp += 1
            return []
        out = []
        for packet in packets:
            if isinstance(packet, SenderReport):
                info = SenderReportInfo(track, packet.ssrc, packet.ntp_seconds - NTP_EPOCH_OFFSET,
                                        packet.rtp_timestamp, now)
                state.receiver.on_sender_report(packet, now)
                if state.first_report is None:
                    state.first_report = info
                state.last_report = info
                state.reports += 1
                out.append(info)
            elif isinstance(packet, Goodbye):
                state.goodbyes += 1
        return out

    def deadline(self) -> float | None:
        """When `poll` must next run (a jitter buffer gap or a receiver report falls due)."""
        earliest = self._next_rr  # asked after every chunk received: no list
        for state in self.states.values():
            t = state.receiver.deadline()
            if t is not None and (earliest is None or t < earliest):
                earliest = t
        return earliest

    def poll(self, now: float) -> list[tuple[int, AccessUnit]]:
        out: list[tuple[int, AccessUnit]] = []
        for index, state in self.states.items():
            deadline = state.receiver.deadline()
            if deadline is not None and now >= deadline:
                out.extend((index, unit) for unit in state.receiver.poll(now))
        return out

    def receiver_reports(self, now: float) -> list[tuple[int, bytes]]:
        """RTCP RR + SDES per track, when due; each goes out on that track's RTCP channel."""
        if self._next_rr is None or now < self._next_rr:
            return []
        self._next_rr = now + self.rr_interval
        out = []
        for index, state in self.states.items():
            block = state.receiver.report_block(now)
            if block is None:
                continue
            report = ReceiverReport(self.ssrc, [block])
            sdes = SourceDescription([(self.ssrc, {1: self.cname.encode()})])
            out.append((index, serialize_rtcp([report, sdes])))
        return out
