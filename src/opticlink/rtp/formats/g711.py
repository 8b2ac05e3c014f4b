"""G.711 over RTP (RFC 3551): PCMU and PCMA, one byte per sample.

The packetizer cuts a continuous stream of encoded bytes into packets of a fixed duration: some
cameras only accept large talk packets (up to 160 ms), others want the usual 20 ms.
"""

from __future__ import annotations

from opticlink.media import AccessUnit, AudioConfig
from opticlink.rtp.formats.base import RtpFormat
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import build_rtp

STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}


class G711Depacketizer:
    """Each packet is one access unit of `len(payload)` samples."""

    def __init__(self, fmt: RtpFormat) -> None:
        self.config = AudioConfig(fmt.encoding.lower(), fmt.clock_rate, fmt.channels)
        self.dropped = 0
        self.problem: str | None = None
        self._after_loss = False

    def push(self, item: BufferedPacket) -> list[AccessUnit]:
        payload = item.packet.payload
        if not payload:
            return []
        unit = AccessUnit(item.packet.timestamp, payload, True, self.config, item.arrival,
                          duration=len(payload) // self.config.channels, discontinuity=self._after_loss)
        self._after_loss = False
        return [unit]

    def loss(self) -> None:
        self._after_loss = True

    def flush(self) -> list[AccessUnit]:
        return []


class G711Packetizer:
    """Packs encoded G.711 bytes into RTP packets of `packet_ms` (20 to 160 ms)."""

    def __init__(self, payload_type: int, ssrc: int, *, sample_rate: int = 8000, packet_ms: int = 20,
                 sequence: int = 0, timestamp: int = 0) -> None:
        if not 10 <= packet_ms <= 160:
            raise ValueError(f"G.711 packet duration {packet_ms} ms is outside 10..160 ms")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.samples_per_packet = sample_rate * packet_ms // 1000
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self._pending = bytearray()
        self._first = True

    def push(self, encoded: bytes) -> list[bytes]:
        """Append encoded samples; returns the packets that are now full, in wire form."""
        self._pending += encoded
        out = []
        size = self.samples_per_packet
        while len(self._pending) >= size:
            out.append(self._packet(bytes(self._pending[:size])))
            del self._pending[:size]
        return out

    @property
    def pending_samples(self) -> int:
        """Samples pushed but not yet in a packet."""
        return len(self._pending)

    def flush(self) -> list[bytes]:
        """The remaining samples as a last, shorter packet."""
        if not self._pending:
            return []
        packet = self._packet(bytes(self._pending))
        self._pending.clear()
        return [packet]

    def skip(self, samples: int) -> None:
        """Advance the timestamp over silence that is not sent (talk paused)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._first = True

    def _packet(self, payload: bytes) -> bytes:
        packet = build_rtp(self.payload_type, self.sequence, self.timestamp, self.ssrc, payload,
                           marker=self._first)
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        return packet
