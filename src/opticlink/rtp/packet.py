"""RTP packets (RFC 3550 section 5.1): parse and build."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from opticlink.errors import RtpParseError

_HEADER = struct.Struct("!BBHII")


@dataclass(slots=True)
class RtpExtension:
    """A header extension: the 16-bit profile word and its data (a multiple of 4 bytes)."""

    profile: int
    data: bytes


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. `timestamp` is in the media's RTP clock ticks, 32-bit as on the wire."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one packet; raises `RtpParseError` on anything RFC 3550 does not allow."""
        n = len(data)
        if n < 12:
            raise RtpParseError(f"RTP packet of {n} bytes is shorter than the 12-byte header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 == 0x80:  # version 2 with no padding, extension nor CSRC: nearly every packet, parsed at once
            return cls(b1 & 0x7F, seq, ts, ssrc, bytes(data[12:]), b1 > 0x7F)
        if b0 >> 6 != 2:
            raise RtpParseError(f"RTP version {b0 >> 6}, expected 2")
        offset = 12 + 4 * (b0 & 0x0F)
        if offset > n:
            raise RtpParseError("RTP CSRC list runs past the end of the packet")
        csrc = struct.unpack_from(f"!{b0 & 0x0F}I", data, 12) if b0 & 0x0F else ()
        extension = None
        if b0 & 0x10:
            if offset + 4 > n:
                raise RtpParseError("RTP header extension is truncated")
            profile, words = struct.unpack_from("!HH", data, offset)
            end = offset + 4 + 4 * words
            if end > n:
                raise RtpParseError("RTP header extension runs past the end of the packet")
            extension = RtpExtension(profile, bytes(data[offset + 4 : end]))
            offset = end
        end = n
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > n:
                raise RtpParseError(f"RTP padding of {padding} bytes does not fit the packet")
            end = n - padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        """The packet's wire form."""
        b0 = 0x80 | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        parts = [
            _HEADER.pack(
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension.data
            if len(ext) % 4:
                ext += b"\x00" * (4 - len(ext) % 4)
            parts.append(struct.pack("!HH", self.extension.profile, len(ext) // 4) + ext)
        parts.append(self.payload)
        if self.padding:
            parts.append(b"\x00" * (self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def build_rtp(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
              marker: bool = False) -> bytes:
    """Wire form of a plain packet (no CSRC, extension or padding): the packetizers' fast path."""
    return _HEADER.pack(
        0x80, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    ) + payload
