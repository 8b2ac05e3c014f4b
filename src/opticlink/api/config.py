"""Service configuration: cameras from YAML, validated, each default written beside its field."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field


class CameraConfig(BaseModel):
    """One camera and the user's preferences for it."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = ""
    url: str  # rtsp://[user:pass@]host[:port]/path
    username: str | None = None  # else taken from the URL
    password: str | None = None
    transport: Literal["auto", "tcp", "udp", "tcp,udp", "udp,tcp"] = "auto"  # auto: TCP, falling back to UDP
    udp_any_port: bool = False  # over UDP, take the camera's packets from any port, not only its server_port
    audio_offset_ms: float = Field(0.0, ge=-2000, le=2000)  # positive delays the camera's sound
    live_audio: bool = True  # send the camera's audio to live viewers
    record_audio: bool = True  # keep audio in recordings
    talkback: bool = True  # allow talking to the camera's speaker
    talk_packet_ms: int = Field(20, ge=20, le=160)  # backchannel packet duration some cameras need
    keep_backchannel_open: bool = False  # else it opens when talk starts and closes when idle
    half_duplex: bool = False  # the talker does not hear the camera while talking (when echo control is not enough)

    @property
    def title(self) -> str:
        return self.name or self.id


class ServiceConfig(BaseModel):
    cameras: list[CameraConfig] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


def load_config(path: str | Path) -> ServiceConfig:
    """Read a YAML file: `cameras: [{id, name, url, ...}]` and optional `host`, `port`."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return ServiceConfig.model_validate(data)
