"""What a simulated camera is: its media, faults, credentials and speaker (served by `sim.server`,
described over ONVIF by `sim.onvif`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opticlink.errors import RtpParseError
from opticlink.rtp.formats.base import RtpFormat
from opticlink.rtp.packet import RtpPacket
from opticlink.sim.camera import CameraModel, ParameterSetMode
from opticlink.sim.faults import Faults
from opticlink.sim.media import EncodedAudio, VideoClip

BACKCHANNEL_FORMATS = (RtpFormat(0, "PCMU", 8000), RtpFormat(8, "PCMA", 8000))


class BackchannelSink:
    """What a camera's speaker received: RTP packets, their payload bytes, optionally a file."""

    def __init__(self, path: Path | None = None,
                 callback: Callable[[RtpPacket, float], None] | None = None) -> None:
        self.path = path
        self.callback = callback
        self.payload = bytearray()
        self.packets: list[tuple[float, RtpPacket]] = []
        self.malformed = 0

    def receive(self, data: bytes, now: float) -> RtpPacket | None:
        """Keep a received packet; returns it, or None when it was malformed."""
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            self.malformed += 1
            return None
        self.packets.append((now, packet))
        self.payload += packet.payload
        if self.path is not None:
            with open(self.path, "ab") as f:
                f.write(packet.payload)
        if self.callback is not None:
            self.callback(packet, now)
        return packet


@dataclass(slots=True)
class EchoSettings:
    """How loud and late the camera's microphone hears its own speaker."""

    delay_ms: float = 150.0
    gain_db: float = -6.0
    t60: float = 0.25


@dataclass(slots=True)
class CameraSpec:
    """One simulated camera: media, faults, and what it accepts."""

    name: str = "cam1"
    video: VideoClip | None = None
    audio: EncodedAudio | None = None
    faults: Faults = field(default_factory=Faults)
    username: str | None = None  # Digest authentication when set
    password: str | None = None
    backchannel: bool = True
    backchannel_formats: tuple[RtpFormat, ...] = BACKCHANNEL_FORMATS
    audio_packet_ms: int = 20
    session_timeout: int = 60
    transports: tuple[str, ...] = ("tcp", "udp")  # lower transports SETUP accepts; others get 461
    sink: BackchannelSink = field(default_factory=BackchannelSink)
    echo: EchoSettings | None = None  # None: the microphone does not hear the speaker
    parameter_sets: ParameterSetMode = "both"  # video SPS/PPS(/VPS): in band, in the SDP's sprop, or both
    substream: CameraSpec | None = None  # a second, smaller stream served at `<name>/sub` (named so)

    @property
    def camera_name(self) -> str:
        """The camera this stream belongs to (a sub-stream's is its main stream's)."""
        return self.name.partition("/")[0]

    def model(self, start: float = 0.0) -> CameraModel:
        return CameraModel(self.video, self.audio, self.faults, start=start, audio_packet_ms=self.audio_packet_ms,
                           cname=f"{self.name}@opticlink.sim", parameter_sets=self.parameter_sets)
