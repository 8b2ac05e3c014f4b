"""Faults a simulated camera can be told to have, each a parameter with its unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SenderReportMode = Literal["normal", "absent", "late", "frozen", "jumping"]


@dataclass(slots=True)
class Faults:
    """Misbehaviour of one camera and of the network in front of it. All off by default."""

    audio_skew_ppm: float = 0.0  # audio sample clock against true time
    video_skew_ppm: float = 0.0  # video (90 kHz) clock against true time
    wall_skew_ppm: float = 0.0  # the camera's NTP wall clock against true time
    av_offset_ms: float = 0.0  # sound stamped this much early: it really happened later
    jitter_ms: float = 0.0  # added network delay, uniform in [0, jitter]
    loss_pct: float = 0.0  # packets dropped (RTP and RTCP)
    reorder_pct: float = 0.0  # packets delivered after the one that follows them
    sender_reports: SenderReportMode = "normal"  # absent; late (first after `sr_late_s`); frozen or jumping NTP
    sr_interval_s: float = 1.0
    sr_late_s: float = 10.0
    video_sr_delay_s: float = 0.0  # the video track's first Sender Report this long after the start (0: at once)
    audio_sr_delay_s: float = 0.0  # the audio track's first Sender Report this long after the start (0: at once)
    reboot_at_s: float | None = None  # new SSRCs, sequence numbers and timestamps for both tracks
    timestamp_jump_at_s: float | None = None  # both tracks' timestamps jump, SSRC unchanged
    drop_at_s: float | None = None  # the camera closes the connection
    stall_at_s: float | None = None  # the camera stops sending but keeps the connection
    rtp_info: bool = True  # PLAY answers with each track's RTP time at the start (most cameras do)
    seed: int = 1

    @property
    def any(self) -> bool:
        return self != Faults(seed=self.seed)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Faults from `key=value,key=value` (the CLI's `--faults`)."""
        faults = cls()
        for item in spec.split(","):
            if not item.strip():
                continue
            key, _, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if key not in cls.__dataclass_fields__:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(cls.__dataclass_fields__)}")
            current = getattr(faults, key)
            if key == "sender_reports":
                if value not in ("normal", "absent", "late", "frozen", "jumping"):
                    raise ValueError(f"sender_reports must be normal/absent/late/frozen/jumping, not {value!r}")
                setattr(faults, key, value)
            elif key == "rtp_info":
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"rtp_info must be true or false, not {value!r}")
                faults.rtp_info = value.lower() in ("true", "1", "yes")
            elif key == "seed":
                setattr(faults, key, int(value))
            else:
                setattr(faults, key, float(value) if value else current)
        return faults
