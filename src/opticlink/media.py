"""The media types every layer shares: codec configurations, access units and timed frames.

An `AccessUnit` is what a depacketizer makes of RTP packets (RTP timestamp, arrival time); a
`MediaFrame` is an access unit placed on a camera's timeline by the sync engine, the one thing the
frame bus carries. Video data is in the 4-byte length-prefixed NAL layout throughout.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample of every channel for G.711 and L16 (0 for a coded format: AAC)."""
        return PCM_WIDTH.get(self.codec, 0) * max(1, self.channels)

    def samples_in(self, data: bytes) -> int:
        """Samples (per channel) one frame of this audio holds."""
        width = self.sample_bytes
        return len(data) // width if width else self.frame_samples or 1024


PCM_WIDTH = {"pcmu": 1, "pcma": 1, "l16": 2}  # bytes per sample of the codecs stored sample by sample

CodecConfig = VideoConfig | AudioConfig


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


@dataclass(slots=True)
class MediaFrame:
    """A video or audio frame placed on the camera session's timeline.

    `pts_us` is microseconds on the session timeline (the receiver's monotonic clock from the
    session's epoch), the same for audio and video captured at the same instant. `wall_clock` is
    the camera's own capture time (Unix seconds) when its Sender Reports give one. `reanchored`
    marks the first frame after the camera restarted its stream (new SSRC or timestamps).
    `dts_us` is the decode time on the same timeline: frames of a track come in decode order, and
    a video track with B-frames has decode times before its presentation times (None: equal).
    """

    track: int
    kind: str  # "video" or "audio"
    codec: str  # "h264", "h265", "pcmu", "pcma", "aac", "l16"
    pts_us: int
    duration_us: int
    keyframe: bool
    data: bytes
    config: CodecConfig
    wall_clock: float | None = None
    discontinuity: bool = False
    rtp_timestamp: int = 0
    ssrc: int = 0
    reanchored: bool = False
    dts_us: int | None = None

    @property
    def decode_us(self) -> int:
        """Decode time in µs on the timeline (the presentation time where none was set)."""
        return self.pts_us if self.dts_us is None else self.dts_us


def length_prefixed(nalus: list[bytes] | list[bytes | bytearray]) -> bytes:
    """NAL units in the 4-byte length-prefixed layout (each unit's bytes copied once, by the join)."""
    return b"".join([part for n in nalus for part in (len(n).to_bytes(4, "big"), n)])


def split_length_prefixed(data: bytes) -> list[bytes]:
    """The NAL units of a 4-byte length-prefixed buffer."""
    out, offset, n = [], 0, len(data)
    while offset + 4 <= n:
        size = int.from_bytes(data[offset : offset + 4], "big")
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


MAX_NAL_HEADERS = 256  # NAL units looked at per frame when reading their headers


def nal_headers(data: bytes) -> list[int]:
    """The first byte of each NAL unit of a 4-byte length-prefixed frame (at most MAX_NAL_HEADERS),
    without copying the units."""
    out, offset, n = [], 0, len(data)
    while offset + 4 < n and len(out) < MAX_NAL_HEADERS:
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size:
            out.append(data[offset + 4])
        offset += 4 + size
    return out


def annexb(nalus: list[bytes] | tuple[bytes, ...]) -> bytes:
    """NAL units in the Annex B byte-stream layout (4-byte start codes)."""
    return b"".join(b"\x00\x00\x00\x01" + n for n in nalus if n)


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
