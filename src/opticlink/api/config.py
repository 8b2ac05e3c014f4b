"""Service configuration: cameras from YAML, validated, each default written beside its field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class CameraConfig(BaseModel):
    """One camera and the user's preferences for it."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = ""
    url: str  # rtsp://[user:pass@]host[:port]/path
    substream_url: str | None = None  # the camera's low-resolution stream, for live tiles: with the credentials
    #                                   above (or the main URL's) unless it carries its own; None: main only
    username: str | None = None  # else taken from the URL
    password: str | None = None
    transport: Literal["auto", "tcp", "udp", "tcp,udp", "udp,tcp"] = "auto"  # auto: TCP, falling back to UDP
    udp_any_port: bool = False  # over UDP, take the camera's packets from any port, not only its server_port
    basic_auth: bool = False  # answer Basic (the password in clear text) only on a link you trust; else Digest only
    audio_offset_ms: float = Field(0.0, ge=-2000, le=2000)  # positive delays the camera's sound
    live_audio: bool = True  # send the camera's audio to live viewers
    record: bool = True  # record this camera continuously (when the service records: `record` below)
    record_audio: bool = True  # keep audio in recordings (false: silent video, no audio track at all)
    retain_days: float | None = Field(None, gt=0)  # recordings of this camera older than this are deleted
    retain_gb: float | None = Field(None, gt=0)  # ... and the oldest past this much of this camera's
    talkback: bool = True  # allow talking to the camera's speaker
    talk_packet_ms: int = Field(20, ge=20, le=160)  # backchannel packet duration some cameras need
    keep_backchannel_open: bool = False  # else it opens when talk starts and closes when idle
    half_duplex: bool = False  # the talker does not hear the camera while talking (when echo control is not enough)

    @property
    def title(self) -> str:
        return self.name or self.id


def default_data_dir() -> Path:
    """Where the service keeps its state (database, TLS certificate): $OPTICLINK_DATA_DIR, else
    $XDG_DATA_HOME/opticlink, else ~/.local/share/opticlink."""
    if os.environ.get("OPTICLINK_DATA_DIR"):
        return Path(os.environ["OPTICLINK_DATA_DIR"]).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser() / "opticlink"


class ServiceConfig(BaseModel):
    """The service's configuration (the YAML `opticlink serve` reads).

    `database` is where the catalog lives (users, sessions, API tokens, cameras added through the API,
    the recording index, the audit log): "file" (data_dir/opticlink.db, SQLite: what a YAML gets by
    default), "memory" (gone at exit: the demo's, and a service built in code), or a PostgreSQL URL,
    `postgresql://user:password@host:5432/name` (libpq parameters such as `?sslmode=require` after it; the
    password may instead come from PGPASSWORD or ~/.pgpass), for nodes that share one catalog. Both go
    through the same data-access layer (`opticlink.store`). The password is never printed or logged: this
    model's repr and validation errors mask it, as camera passwords are.
    """

    model_config = ConfigDict(hide_input_in_errors=True)  # an error never echoes a value (a URL's password)

    cameras: list[CameraConfig] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)  # database, self-signed certificate; relative to the YAML
    tls: bool | Literal["auto"] = "auto"  # HTTPS: auto = when host is not a loopback address (browsers need it
    # for the microphone and SharedArrayBuffer off localhost); true also on loopback; false never
    tls_cert: Path | None = None  # your certificate (PEM, chain after it), else a self-signed one in data_dir
    tls_key: Path | None = None  # its private key (PEM, unencrypted)
    database: str = "memory"  # file: data_dir/opticlink.db (what `serve` uses); memory: gone at exit (the
    #                           demo's, and a service built in code); or postgresql://user:password@host:port/name
    hosts: list[str] = Field(default_factory=list)  # names the service is reached by, beyond localhost, the listen
    #                                 address and IP literals; a request naming another host is refused (DNS rebinding)
    origins: list[str] = Field(default_factory=list)  # other page origins allowed to open the live WebSocket
    session_idle_minutes: float = Field(720.0, gt=0)  # a login ends after this long without a request (12 h)
    session_max_hours: float = Field(168.0, gt=0)  # ... and this long after it began, regardless (7 days)
    audit_days: float = Field(400.0, gt=0)  # audit entries are kept this long (a year and a bit)
    record: bool = False  # continuous recording of every camera with `record: true` (`serve` turns it on)
    recordings_dir: Path | None = None  # where segments go; default data_dir/recordings
    segment_seconds: float = Field(60.0, ge=2, le=600)  # a new segment file at the first keyframe after this
    retain_gb: float | None = Field(None, gt=0)  # all recordings together: the oldest go past this
    min_free_gb: float = Field(1.0, ge=0)  # ... and whenever the disk has less free than this
    node: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,48}$")  # this node's id among those sharing the
    #                     database (cluster: leases); default this machine's name and the port (`/N`: worker N)

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        value = value.strip()
        if value in ("file", "memory"):
            return value
        from opticlink.store.database import postgresql_url  # SQLAlchemy: imported only for a service

        postgresql_url(value)  # ValueError naming no password
        return value

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for name, value in super().__repr_args__():
            if name == "database" and isinstance(value, str) and "://" in value:
                from opticlink.store.database import mask_url

                value = mask_url(value)
            yield name, value

    @property
    def recordings_root(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @model_validator(mode="after")
    def _paths(self, info: ValidationInfo) -> ServiceConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        base = (info.context or {}).get("base")  # the YAML's folder: relative paths are relative to it
        for name in ("data_dir", "tls_cert", "tls_key", "recordings_dir"):
            value = getattr(self, name)
            if value is not None:
                value = value.expanduser()
                setattr(self, name, base / value if base is not None and not value.is_absolute() else value)
        return self


def load_config(path: str | Path) -> ServiceConfig:
    """Read a YAML file: `cameras: [{id, name, url, ...}]` and optional `host`, `port`."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    data.setdefault("database", "file")  # a configured service keeps its users
    data.setdefault("record", True)  # ... and records its cameras
    return ServiceConfig.model_validate(data, context={"base": Path(path).resolve().parent})
