"""L16 over RTP (RFC 3551): 16-bit big-endian linear PCM, interleaved channels."""

from __future__ import annotations

from opticlink.rtp.formats.base import AccessUnit, AudioConfig, RtpFormat
from opticlink.rtp.jitterbuffer import BufferedPacket


class L16Depacketizer:
    """Each packet is one access unit; a trailing partial sample is dropped."""

    def __init__(self, fmt: RtpFormat) -> None:
        self.config = AudioConfig("l16", fmt.clock_rate, fmt.channels)
        self.dropped = 0
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
