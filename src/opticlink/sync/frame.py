"""What leaves a camera session: a frame with its time on the session's timeline."""

from __future__ import annotations

from dataclasses import dataclass

from opticlink.rtp.formats import CodecConfig


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
