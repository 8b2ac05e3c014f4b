"""What every RTP payload format shares: the format description, codec configs and access units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """Parameter sets of an H.264 (SPS, PPS) or H.265 (VPS, SPS, PPS) stream."""

    codec: str  # "h264" or "h265"
    parameter_sets: tuple[bytes, ...]

    @property
    def complete(self) -> bool:
        return len(self.parameter_sets) == (2 if self.codec == "h264" else 3) and all(self.parameter_sets)


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """An audio stream's codec, rate and channels; `extra` is AAC's AudioSpecificConfig."""

    codec: str  # "pcmu", "pcma", "aac", "l16"
    sample_rate: int
    channels: int = 1
    extra: bytes = b""
    frame_samples: int = 0  # AAC: samples per access unit (1024 or 960)


CodecConfig = VideoConfig | AudioConfig

# The most one access unit may hold while it is gathered. A 4K camera's keyframe at its top quality
# is 1-2 MB; 8 MiB leaves four times that and still bounds what one track holds when a unit never
# ends (an FU-A without its end bit, a timestamp that never changes, no marker): the unit is dropped.
MAX_UNIT_BYTES = 8 << 20
# The most NAL units one access unit may hold: encoders that cut slices to fit a packet make ~750 of
# a 1 MB keyframe; five times that. Tiny NAL units (a STAP-A packs 20,000 of one byte) would otherwise
# cost far more memory per byte than MAX_UNIT_BYTES says.
MAX_UNIT_NALUS = 4096


@dataclass(slots=True)
class AccessUnit:
    """One decodable unit: a video frame or an audio frame, with its RTP timestamp.

    Video `data` is NAL units each prefixed by a 4-byte big-endian length (the avcC/hvcC layout
    WebCodecs and Matroska take); audio `data` is the codec's frame (G.711 and L16 samples, one raw
    AAC frame). `arrival` is when its first packet came off the network (seconds), `duration` is in
    RTP ticks (0 when unknown), `discontinuity` marks the first unit after packets were lost, `ssrc`
    is the source it came from.
    """

    timestamp: int
    data: bytes
    keyframe: bool
    config: CodecConfig
    arrival: float
    duration: int = 0
    discontinuity: bool = False
    ssrc: int = 0


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
        self._nalus: list[bytes] = []
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

    def _keep(self, nal: bytes) -> None:
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


def length_prefixed(nalus: list[bytes]) -> bytes:
    """NAL units in the 4-byte length-prefixed layout."""
    return b"".join(len(n).to_bytes(4, "big") + n for n in nalus)


def split_length_prefixed(data: bytes) -> list[bytes]:
    """The NAL units of a 4-byte length-prefixed buffer."""
    out, offset, n = [], 0, len(data)
    while offset + 4 <= n:
        size = int.from_bytes(data[offset : offset + 4], "big")
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01)."""
    out: list[bytes] = []
    start = _next_start_code(data, 0)
    while start is not None:
        begin = start[1]
        following = _next_start_code(data, begin)
        end = following[0] if following else len(data)
        nal = data[begin:end]
        while nal.endswith(b"\x00"):
            nal = nal[:-1]
        if nal:
            out.append(bytes(nal))
        start = following
    return out


def _next_start_code(data: bytes, offset: int) -> tuple[int, int] | None:
    i = data.find(b"\x00\x00\x01", offset)
    if i < 0:
        return None
    return (i - 1 if i > 0 and data[i - 1] == 0 else i), i + 3
