"""What every RTP payload format shares: the format description, the depacketizer protocol, NAL unit assembly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from opticlink.media import AccessUnit, CodecConfig, VideoConfig, length_prefixed
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import build_rtp


@dataclass(frozen=True, slots=True)
class RtpFormat:
    """One payload format of a media description: `a=rtpmap` and `a=fmtp` in a single object."""

    payload_type: int
    encoding: str  # upper case as in rtpmap: H264, H265, PCMU, PCMA, MPEG4-GENERIC, L16
    clock_rate: int
    channels: int = 1
    fmtp: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def rtpmap(self) -> str:
        ch = f"/{self.channels}" if self.channels != 1 and self.encoding not in ("H264", "H265") else ""
        return f"{self.encoding}/{self.clock_rate}{ch}"

    def fmtp_line(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.fmtp.items())


# The most one access unit may hold while it is gathered. A 4K camera's keyframe at its top quality
# is 1-2 MB; 8 MiB leaves four times that and still bounds what one track holds when a unit never
# ends (an FU-A without its end bit, a timestamp that never changes, no marker): the unit is dropped.
MAX_UNIT_BYTES = 8 << 20
# The most NAL units one access unit may hold: encoders that cut slices to fit a packet make ~750 of
# a 1 MB keyframe; five times that. Tiny NAL units (a STAP-A packs 20,000 of one byte) would otherwise
# cost far more memory per byte than MAX_UNIT_BYTES says.
MAX_UNIT_NALUS = 4096


class Depacketizer(Protocol):
    """Turns in-order RTP packets of one format into access units."""

    config: CodecConfig
    dropped: int  # units given up because packets were lost or malformed
    problem: str | None  # the last thing wrong with what the camera sent, for its status; None if nothing

    def push(self, item: BufferedPacket) -> list[AccessUnit]: ...

    def loss(self) -> None:
        """Packets are missing before the next `push`."""

    def flush(self) -> list[AccessUnit]:
        """Emit whatever is complete and pending (end of stream)."""


class UnitAssembly:
    """What the H.264 and H.265 depacketizers share: one access unit's NAL units gathered, bounded by
    `MAX_UNIT_BYTES` and `MAX_UNIT_NALUS` (past either the unit is dropped and `problem` says why),
    then emitted whole, or counted in `dropped` when packets of it were lost or malformed.

    A codec's `_depacketize` calls `_grow` with each payload's size and `_keep` with each NAL unit."""

    codec_name = ""

    def __init__(self, config: VideoConfig) -> None:
        self.config = config
        self.dropped = 0
        self.malformed = 0
        self.problem: str | None = None
        self._size = 0  # payload bytes of the unit being gathered, dropped ones included
        self._nalus: list[bytes | bytearray] = []  # a fragmented unit is kept as the bytearray it was gathered in
        self._ts: int | None = None
        self._arrival = 0.0
        self._keyframe = False
        self._damaged = False
        self._fu: bytearray | None = None
        self._after_loss = False

    def loss(self) -> None:
        self._fu = None
        if self._ts is not None:
            self._damaged = True
        self._after_loss = True

    def flush(self) -> list[AccessUnit]:
        return self._emit()

    def _keep(self, nal: bytes | bytearray) -> None:
        if self._damaged:
            return  # dropped at emit anyway: not kept
        if len(self._nalus) == MAX_UNIT_NALUS:
            self.problem = f"{self.codec_name} unit of more than {MAX_UNIT_NALUS} NAL units dropped"
            self._damaged = True
            self._nalus = []
            return
        self._nalus.append(nal)

    def _grow(self, size: int) -> bool:
        """Count `size` more bytes into the unit; past `MAX_UNIT_BYTES` the unit is dropped (False)."""
        self._size += size
        if self._size <= MAX_UNIT_BYTES:
            return True
        if self._nalus or self._fu is not None or not self._damaged:
            self.problem = (f"{self.codec_name} unit over {MAX_UNIT_BYTES >> 20} MiB dropped (a fragmented NAL unit "
                            f"that never ends, or neither a marker nor a new timestamp)")
        self._damaged = True
        self._nalus = []
        self._fu = None
        return False

    def _emit(self) -> list[AccessUnit]:
        out: list[AccessUnit] = []
        if self._ts is not None and self._nalus and not self._damaged:
            out.append(AccessUnit(self._ts, length_prefixed(self._nalus), self._keyframe, self.config,
                                  self._arrival, discontinuity=self._after_loss))
            self._after_loss = False
        elif self._ts is not None and (self._nalus or self._damaged):
            self.dropped += 1
            self._after_loss = True
        self._nalus = []
        self._ts = None
        self._keyframe = False
        self._damaged = False
        self._fu = None
        self._size = 0
        return out


class NalPacketizer:
    """What the H.264 and H.265 packetizers share: RTP packets of one access unit's payloads, numbered
    in sequence, the marker on the last. A codec's `packetize` cuts NAL units into payloads of at
    most `mtu - 12` bytes."""

    def __init__(self, payload_type: int, ssrc: int, sequence: int = 0, mtu: int = 1400) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF
        self.mtu = mtu

    def _packets(self, payloads: list[bytes], timestamp: int) -> list[bytes]:
        packets = []
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            packets.append(build_rtp(self.payload_type, self.sequence, timestamp, self.ssrc, payload,
                                     marker=i == last))
            self.sequence = (self.sequence + 1) & 0xFFFF
        return packets
