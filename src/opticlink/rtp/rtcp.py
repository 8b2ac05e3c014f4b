"""RTCP compound packets (RFC 3550 section 6): sender and receiver reports, SDES, BYE.

Packet types we do not interpret (APP, feedback, XR) come back as `RtcpUnknown`, which is not an
error: cameras send them and the session goes on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from opticlink.errors import RtcpParseError

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204
SDES_CNAME = 1


def ntp_to_seconds(ntp: int) -> float:
    """A 64-bit NTP timestamp (32.32 fixed point) as seconds since the NTP epoch."""
    return (ntp >> 32) + (ntp & 0xFFFFFFFF) / 4294967296.0


def seconds_to_ntp(seconds: float) -> int:
    """Seconds since the NTP epoch as a 64-bit NTP timestamp, wrapping like the wire field."""
    whole = int(seconds // 1)
    frac = round((seconds - whole) * 4294967296.0)
    if frac >= 1 << 32:
        whole, frac = whole + 1, frac - (1 << 32)
    return ((whole & 0xFFFFFFFF) << 32) | frac


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(slots=True)
class ReportBlock:
    """Reception report about one source. `jitter` is in RTP ticks, `lsr`/`dlsr` in 1/65536 s."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    _STRUCT = struct.Struct("!IB3sIIII")

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, frac, lost, highest, jitter, lsr, dlsr = cls._STRUCT.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, frac, cumulative, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.cumulative_lost))
        return self._STRUCT.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big", signed=True),
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )


@dataclass(slots=True)
class SenderReport:
    """SR: the sender's wall clock (`ntp_timestamp`, 64-bit NTP) at RTP time `rtp_timestamp`."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)

    @property
    def ntp_seconds(self) -> float:
        return ntp_to_seconds(self.ntp_timestamp)

    def serialize(self) -> bytes:
        body = struct.pack(
            "!IQIII",
            self.ssrc,
            self.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        ) + b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), SR, body)


@dataclass(slots=True)
class ReceiverReport:
    """RR: reception reports from a receiver that sends no media."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), RR, body)


@dataclass(slots=True)
class SourceDescription:
    """SDES: items per source; item 1 is the CNAME that ties a camera's tracks together."""

    chunks: list[tuple[int, dict[int, bytes]]] = field(default_factory=list)

    def cname(self, ssrc: int) -> str | None:
        for chunk_ssrc, items in self.chunks:
            if chunk_ssrc == ssrc and SDES_CNAME in items:
                return items[SDES_CNAME].decode("utf-8", "replace")
        return None

    def serialize(self) -> bytes:
        body = bytearray()
        for ssrc, items in self.chunks:
            chunk = bytearray(struct.pack("!I", ssrc))
            for kind, value in items.items():
                value = value[:255]
                chunk += bytes([kind, len(value)]) + value
            chunk += b"\x00" * (4 - len(chunk) % 4)
            body += chunk
        return _header(len(self.chunks), SDES, bytes(body))


@dataclass(slots=True)
class Goodbye:
    """BYE: these sources are leaving (a camera stopping or restarting its encoder)."""

    ssrcs: list[int] = field(default_factory=list)
    reason: str = ""

    def serialize(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            raw = self.reason.encode()[:255]
            body += bytes([len(raw)]) + raw
            body += b"\x00" * (-len(body) % 4)
        return _header(len(self.ssrcs), BYE, body)


@dataclass(slots=True)
class RtcpUnknown:
    """An RTCP packet of a type we carry but do not interpret."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | RtcpUnknown


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return struct.pack("!BBH", 0x80 | (count & 0x1F), packet_type, len(body) // 4) + body


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound packet; raises `RtcpParseError` if any part is malformed."""
    packets: list[RtcpPacket] = []
    offset, n = 0, len(data)
    if n < 4:
        raise RtcpParseError(f"RTCP packet of {n} bytes is shorter than its 4-byte header")
    while offset < n:
        if offset + 4 > n:
            raise RtcpParseError("RTCP compound packet ends inside a header")
        b0, packet_type, words = struct.unpack_from("!BBH", data, offset)
        if b0 >> 6 != 2:
            raise RtcpParseError(f"RTCP version {b0 >> 6}, expected 2")
        end = offset + 4 + 4 * words
        if end > n:
            raise RtcpParseError(f"RTCP packet type {packet_type} claims {4 * words} bytes, "
                                 f"{n - offset - 4} remain")
        body_end = end
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > 4 * words:
                raise RtcpParseError(f"RTCP padding of {pad} bytes does not fit the packet")
            body_end = end - pad
        packets.append(_parse_one(packet_type, b0 & 0x1F, bytes(data[offset + 4 : body_end])))
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24 + 24 * count:
            raise RtcpParseError(f"RTCP SR with {count} report blocks needs {24 + 24 * count} bytes, "
                                 f"has {len(body)}")
        ssrc, ntp, rtp, packets, octets = struct.unpack_from("!IQIII", body)
        blocks = [ReportBlock.parse(body, 24 + 24 * i) for i in range(count)]
        return SenderReport(ssrc, ntp, rtp, packets, octets, blocks)
    if packet_type == RR:
        if len(body) < 4 + 24 * count:
            raise RtcpParseError(f"RTCP RR with {count} report blocks needs {4 + 24 * count} bytes, "
                                 f"has {len(body)}")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, [ReportBlock.parse(body, 4 + 24 * i) for i in range(count)])
    if packet_type == SDES:
        return _parse_sdes(count, body)
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpParseError(f"RTCP BYE lists {count} sources in {len(body)} bytes")
        ssrcs = list(struct.unpack_from(f"!{count}I", body))
        reason = ""
        rest = body[4 * count :]
        if rest:
            length = rest[0]
            if 1 + length > len(rest):
                raise RtcpParseError("RTCP BYE reason runs past the end of the packet")
            reason = rest[1 : 1 + length].decode("utf-8", "replace")
        return Goodbye(ssrcs, reason)
    return RtcpUnknown(packet_type, count, body)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[tuple[int, dict[int, bytes]]] = []
    offset, n = 0, len(body)
    for _ in range(count):
        if offset + 4 > n:
            raise RtcpParseError("RTCP SDES chunk is truncated")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items: dict[int, bytes] = {}
        while True:
            if offset >= n:
                raise RtcpParseError("RTCP SDES chunk has no end item")
            kind = body[offset]
            if kind == 0:
                offset = (offset + 4) & ~3
                break
            if offset + 2 > n or offset + 2 + body[offset + 1] > n:
                raise RtcpParseError("RTCP SDES item runs past the end of the packet")
            length = body[offset + 1]
            items[kind] = body[offset + 2 : offset + 2 + length]
            offset += 2 + length
        chunks.append((ssrc, items))
    return SourceDescription(chunks)


def serialize_rtcp(packets: list[RtcpPacket]) -> bytes:
    """A compound packet's wire form."""
    return b"".join(p.serialize() for p in packets)
