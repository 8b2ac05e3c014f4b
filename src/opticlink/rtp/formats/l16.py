"""L16 over RTP (RFC 3551): 16-bit big-endian linear PCM, interleaved channels."""

from __future__ import annotations

from opticlink.media import AccessUnit, AudioConfig
from opticlink.rtp.formats.base import RtpFormat
from opticlink.rtp.jitterbuffer import BufferedPacket


class L16Depacketizer:
    """Each packet is one access unit; a trailing partial sample is dropped."""

    def __init__(self, fmt: RtpFormat) -> None:
        self.config = AudioConfig("l16", fmt.clock_rate, fmt.channels)
        self.dropped = 0
        self.problem: str | None = None
        self._after_loss = False
        self._frame_bytes = 2 * max(1, fmt.channels)

    def push(self, item: BufferedPacket) -> list[AccessUnit]:
        payload = item.packet.payload
        usable = len(payload) - len(payload) % self._frame_bytes
        if usable <= 0:
            self.dropped += 1
            return []
        unit = AccessUnit(item.packet.timestamp, payload[:usable], True, self.config, item.arrival,
                          duration=usable // self._frame_bytes, discontinuity=self._after_loss)
        self._after_loss = False
        return [unit]

    def loss(self) -> None:
        self._after_loss = True

    def flush(self) -> list[AccessUnit]:
        return []


class L16Packetizer:
    """16-bit big-endian PCM into RTP packets of `packet_ms`."""

    def __init__(self, payload_type: int, ssrc: int, *, sample_rate: int, channels: int = 1, packet_ms: int = 20,
                 sequence: int = 0, timestamp: int = 0) -> None:
        from opticlink.rtp.packet import build_rtp

        self._build = build_rtp
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.frame_bytes = 2 * channels
        self.samples_per_packet = sample_rate * packet_ms // 1000
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self._pending = bytearray()

    @property
    def pending_samples(self) -> int:
        """Samples pushed but not yet in a packet."""
        return len(self._pending) // self.frame_bytes

    def flush(self) -> list[bytes]:
        if not self._pending:
            return []
        payload = bytes(self._pending)
        self._pending.clear()
        packet = self._build(self.payload_type, self.sequence, self.timestamp, self.ssrc, payload)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload) // self.frame_bytes) & 0xFFFFFFFF
        return [packet]

    def skip(self, samples: int) -> None:
        """Advance the timestamp over silence that is not sent (talk paused)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    def push(self, big_endian_pcm: bytes) -> list[bytes]:
        self._pending += big_endian_pcm
        size = self.samples_per_packet * self.frame_bytes
        out = []
        while len(self._pending) >= size:
            payload = bytes(self._pending[:size])
            del self._pending[:size]
            out.append(self._build(self.payload_type, self.sequence, self.timestamp, self.ssrc, payload))
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.timestamp = (self.timestamp + self.samples_per_packet) & 0xFFFFFFFF
        return out
