"""AAC over RTP as `mpeg4-generic` (RFC 3640): AU-header depacketizer and AAC-hbr packetizer."""

from __future__ import annotations

import contextlib

from opticlink.errors import RtpParseError
from opticlink.media import AccessUnit, AudioConfig
from opticlink.rtp.formats.base import MAX_UNIT_BYTES, RtpFormat
from opticlink.rtp.formats.bits import BitReader
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import build_rtp

# The most AAC frames one packet may carry; a packet with more is dropped whole. Cameras put 1 to 4
# frames in a packet (each frame more is 21-128 ms more latency); 64 frames of 1024 samples are 1.4 s
# at 48 kHz. Without a cap, AU headers of 4 bits (sizelength=1) make 65,528 units of one packet.
MAX_UNITS_PER_PACKET = 64

SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def parse_audio_specific_config(config: bytes) -> tuple[int, int, int, int]:
    """(object type, sample rate, channels, samples per frame) of an AudioSpecificConfig."""
    bits = BitReader(config, RtpParseError)
    object_type = bits.read(5)
    if object_type == 31:
        object_type = 32 + bits.read(6)
    index = bits.read(4)
    rate = bits.read(24) if index == 15 else (SAMPLE_RATES[index] if index < len(SAMPLE_RATES) else 0)
    channels = bits.read(4)
    frame_samples = 1024
    if object_type in (1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23) and bits.pos < 8 * len(config):
        frame_samples = 960 if bits.read(1) else 1024
    return object_type, rate, channels, frame_samples


def audio_specific_config(sample_rate: int, channels: int, object_type: int = 2) -> bytes:
    """A 2-byte AudioSpecificConfig for AAC-LC at a standard rate."""
    index = SAMPLE_RATES.index(sample_rate)
    value = (object_type << 11) | (index << 7) | (channels << 3)
    return value.to_bytes(2, "big")


def _int_param(fmtp: dict[str, str], name: str, default: int = 0) -> int:
    try:
        return max(0, int(fmtp.get(name, default)))  # a negative length would never advance the parse
    except ValueError:
        return default


class AacDepacketizer:
    """Splits `mpeg4-generic` payloads into raw AAC frames (AAC-hbr, AAC-lbr and generic modes).

    Several frames in one packet get consecutive timestamps; a frame fragmented over packets
    (a single AU-header whose size exceeds the payload) is gathered up to the marker bit.
    """

    def __init__(self, fmt: RtpFormat) -> None:
        fmtp = {k.lower(): v for k, v in fmt.fmtp.items()}
        extra = bytes.fromhex(fmtp.get("config", "")) if _is_hex(fmtp.get("config", "")) else b""
        rate, channels, frame_samples = fmt.clock_rate, fmt.channels, 1024
        if extra:
            with contextlib.suppress(RtpParseError):
                _, rate, channels, frame_samples = parse_audio_specific_config(extra)
        self.config = AudioConfig("aac", rate or fmt.clock_rate, channels or fmt.channels, extra,
                                  frame_samples)
        self.size_length = _int_param(fmtp, "sizelength", 13)
        self.index_length = _int_param(fmtp, "indexlength", 3)
        self.index_delta_length = _int_param(fmtp, "indexdeltalength", 3)
        self.cts_delta_length = _int_param(fmtp, "ctsdeltalength")
        self.dts_delta_length = _int_param(fmtp, "dtsdeltalength")
        self.random_access = _int_param(fmtp, "randomaccessindication")
        self.stream_state_length = _int_param(fmtp, "streamstateindication")
        # ticks per frame on the RTP clock, which may differ from the codec's sample rate
        self.frame_ticks = frame_samples * fmt.clock_rate // max(1, self.config.sample_rate)
        self.dropped = 0
        self.problem: str | None = None
        self._fragment: bytearray | None = None
        self._fragment_size = 0
        self._fragment_ts = 0
        self._fragment_arrival = 0.0
        self._after_loss = False

    def push(self, item: BufferedPacket) -> list[AccessUnit]:
        packet = item.packet
        try:
            sizes, data = self._split(packet.payload)
        except RtpParseError as exc:
            self.problem = f"AAC packet dropped: {exc}"
            self.dropped += 1
            self._after_loss = True
            self._fragment = None
            return []
        if self._fragment is not None:
            if packet.timestamp != self._fragment_ts or len(sizes) != 1:
                self.dropped += 1
                self._fragment = None
                self._after_loss = True
            elif len(self._fragment) + len(data) > self._fragment_size:
                self.problem = f"AAC frame fragments exceed the announced {self._fragment_size} bytes"
                self.dropped += 1
                self._fragment = None
                self._after_loss = True
                return []
            else:
                self._fragment += data
                if not packet.marker:
                    return []
                frame = bytes(self._fragment)
                self._fragment = None
                if len(frame) != self._fragment_size:
                    self.dropped += 1
                    self._after_loss = True
                    return []
                return [self._unit(packet.timestamp, frame, self._fragment_arrival)]
        if len(sizes) == 1 and sizes[0] > len(data):
            if sizes[0] > MAX_UNIT_BYTES:
                self.problem = f"AAC frame of {sizes[0]} bytes announced (over {MAX_UNIT_BYTES})"
                self.dropped += 1
                self._after_loss = True
                return []
            self._fragment = bytearray(data)
            self._fragment_size = sizes[0]
            self._fragment_ts = packet.timestamp
            self._fragment_arrival = item.arrival
            return []
        out, offset = [], 0
        for i, size in enumerate(sizes):
            if offset + size > len(data):
                self.dropped += len(sizes) - i
                self._after_loss = True
                break
            ts = (packet.timestamp + i * self.frame_ticks) & 0xFFFFFFFF
            out.append(self._unit(ts, data[offset : offset + size], item.arrival))
            offset += size
        return out

    def loss(self) -> None:
        if self._fragment is not None:
            self.dropped += 1
        self._fragment = None
        self._after_loss = True

    def flush(self) -> list[AccessUnit]:
        return []

    def _unit(self, ts: int, frame: bytes, arrival: float) -> AccessUnit:
        unit = AccessUnit(ts, frame, True, self.config, arrival, duration=self.frame_ticks,
                          discontinuity=self._after_loss)
        self._after_loss = False
        return unit

    def _split(self, payload: bytes) -> tuple[list[int], bytes]:
        if self.size_length == 0:
            return [len(payload)], payload  # constant-size mode is not used by cameras; one frame
        if len(payload) < 2:
            raise RtpParseError("mpeg4-generic payload is shorter than its AU-headers-length")
        header_bits = int.from_bytes(payload[:2], "big")
        header_bytes = (header_bits + 7) // 8
        if 2 + header_bytes > len(payload):
            raise RtpParseError(f"mpeg4-generic AU headers ({header_bits} bits) exceed the payload")
        bits = BitReader(payload[2 : 2 + header_bytes], RtpParseError)
        sizes: list[int] = []
        while bits.pos < header_bits:
            if len(sizes) == MAX_UNITS_PER_PACKET:
                raise RtpParseError(f"mpeg4-generic payload has more than {MAX_UNITS_PER_PACKET} AU headers "
                                    f"(sizelength={self.size_length})")
            sizes.append(bits.read(self.size_length))
            bits.read(self.index_length if len(sizes) == 1 else self.index_delta_length)
            if self.cts_delta_length and bits.read(1):
                bits.read(self.cts_delta_length)
            if self.dts_delta_length and bits.read(1):
                bits.read(self.dts_delta_length)
            if self.random_access:
                bits.read(1)
            if self.stream_state_length:
                bits.read(self.stream_state_length)
        if not sizes:
            raise RtpParseError("mpeg4-generic payload has no AU headers")
        return sizes, payload[2 + header_bytes :]


def _is_hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return bool(value)


class AacPacketizer:
    """One raw AAC frame per packet, AAC-hbr headers (sizelength=13, indexlength=3)."""

    def __init__(self, payload_type: int, ssrc: int, sequence: int = 0) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF

    def packetize(self, frame: bytes, timestamp: int) -> bytes:
        header = (len(frame) << 3).to_bytes(2, "big")
        packet = build_rtp(self.payload_type, self.sequence, timestamp, self.ssrc,
                           b"\x00\x10" + header + frame, marker=True)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return packet


def aac_fmtp(config: bytes) -> dict[str, str]:
    """The `a=fmtp` parameters for AAC-hbr with this AudioSpecificConfig."""
    return {"streamtype": "5", "profile-level-id": "1", "mode": "AAC-hbr", "sizelength": "13",
            "indexlength": "3", "indexdeltalength": "3", "config": config.hex()}
