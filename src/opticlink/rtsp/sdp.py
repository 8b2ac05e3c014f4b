"""Session descriptions (RFC 8866) as RTSP cameras write them: parse, build, resolve control URLs.

Direction attributes follow ONVIF's reading: a camera's own streams are `recvonly` (the client
receives) and the audio backchannel to its speaker is `sendonly` (the client sends).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opticlink.errors import SdpParseError
from opticlink.rtp.formats.base import RtpFormat

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    14: ("MPA", 90000, 1),
    26: ("JPEG", 90000, 1),
    33: ("MP2T", 90000, 1),
}


@dataclass(slots=True)
class MediaDescription:
    """One `m=` section: its kind, formats in preference order, control URL and direction."""

    kind: str
    port: int = 0
    protocol: str = "RTP/AVP"
    formats: list[RtpFormat] = field(default_factory=list)
    control: str | None = None
    direction: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    @property
    def format(self) -> RtpFormat | None:
        """The first (preferred) format, or None when the section lists none we could read."""
        return self.formats[0] if self.formats else None


@dataclass(slots=True)
class SessionDescription:
    """A whole description: session-level control and direction, and the media sections."""

    media: list[MediaDescription] = field(default_factory=list)
    name: str = "-"
    origin: str = "- 0 0 IN IP4 127.0.0.1"
    control: str | None = None
    direction: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def media_direction(self, media: MediaDescription) -> str:
        """The effective direction of a section: its own, else the session's (RFC 4566 section 6:
        a session-level direction applies to every section without one), else sendrecv."""
        return media.direction or self.direction or "sendrecv"

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse a description; raises `SdpParseError` when it has no usable structure."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        desc = cls()
        current: MediaDescription | None = None
        rtpmaps: dict[int, tuple[str, int, int]] = {}
        fmtps: dict[int, dict[str, str]] = {}
        payload_types: list[int] = []
        saw_version = False

        def finish() -> None:
            if current is None:
                return
            desc.media.append(current)
            for pt in payload_types:
                if pt in rtpmaps:
                    encoding, rate, channels = rtpmaps[pt]
                elif pt in STATIC_PAYLOAD_TYPES:
                    encoding, rate, channels = STATIC_PAYLOAD_TYPES[pt]
                else:
                    continue
                current.formats.append(RtpFormat(pt, encoding, rate, channels, fmtps.get(pt, {})))

        for raw in text.replace("\r\n", "\n").split("\n"):
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                continue  # tolerate junk lines, as cameras' descriptions contain them
            kind, value = line[0], line[2:]
            if kind == "v":
                saw_version = True
            elif kind == "o" and current is None:
                desc.origin = value
            elif kind == "s" and current is None:
                desc.name = value
            elif kind == "m":
                finish()
                parts = value.split()
                if len(parts) < 3:
                    raise SdpParseError(f"malformed media line m={value[:80]!r}")
                try:
                    port = int(parts[1].split("/")[0])
                except ValueError:
                    raise SdpParseError(f"media line port {parts[1][:20]!r} is not a number") from None
                current = MediaDescription(kind=parts[0].lower(), port=port, protocol=parts[2])
                payload_types = []
                for fmt in parts[3:]:
                    if fmt.isascii() and fmt.isdigit() and int(fmt) < 128:
                        payload_types.append(int(fmt))
                rtpmaps, fmtps = {}, {}
            elif kind == "a":
                name, _, attr_value = value.partition(":")
                name = name.strip().lower()
                attr_value = attr_value.strip()
                if current is None:
                    desc.attributes.append((name, attr_value))
                    if name == "control":
                        desc.control = attr_value
                    elif name in DIRECTIONS:
                        desc.direction = name
                    continue
                current.attributes.append((name, attr_value))
                if name == "control":
                    current.control = attr_value
                elif name in DIRECTIONS:
                    current.direction = name
                elif name == "rtpmap":
                    parsed = _parse_rtpmap(attr_value)
                    if parsed:
                        rtpmaps[parsed[0]] = parsed[1:]
                elif name == "fmtp":
                    pt_text, _, params = attr_value.partition(" ")
                    if pt_text.isascii() and pt_text.isdigit():
                        fmtps[int(pt_text)] = _parse_fmtp(params)
        finish()
        if not saw_version and not desc.media:
            raise SdpParseError("not a session description (no v= line and no media)")
        return desc

    def serialize(self) -> str:
        lines = ["v=0", f"o={self.origin}", f"s={self.name}", "c=IN IP4 0.0.0.0", "t=0 0"]
        if self.control:
            lines.append(f"a=control:{self.control}")
        if self.direction:
            lines.append(f"a={self.direction}")
        for name, value in self.attributes:
            if name not in ("control", *DIRECTIONS):
                lines.append(f"a={name}:{value}" if value else f"a={name}")
        for m in self.media:
            pts = " ".join(str(f.payload_type) for f in m.formats)
            lines.append(f"m={m.kind} {m.port} {m.protocol} {pts}")
            for f in m.formats:
                lines.append(f"a=rtpmap:{f.payload_type} {f.rtpmap}")
                if f.fmtp:
                    lines.append(f"a=fmtp:{f.payload_type} {f.fmtp_line()}")
            if m.control:
                lines.append(f"a=control:{m.control}")
            for name, value in m.attributes:
                if name not in ("control", "rtpmap", "fmtp", *DIRECTIONS):
                    lines.append(f"a={name}:{value}" if value else f"a={name}")
            if m.direction:
                lines.append(f"a={m.direction}")
        return "\r\n".join(lines) + "\r\n"


def _parse_rtpmap(value: str) -> tuple[int, str, int, int] | None:
    pt_text, _, spec = value.partition(" ")
    if not (pt_text.isascii() and pt_text.isdigit()):
        return None
    parts = spec.strip().split("/")
    if len(parts) < 2 or not parts[0]:
        return None
    try:
        rate = int(parts[1])
        channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
    except ValueError:
        return None
    if rate <= 0 or not 1 <= channels <= 8:
        return None
    return int(pt_text), parts[0].upper(), rate, channels


def _parse_fmtp(params: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in params.split(";"):
        key, eq, value = item.strip().partition("=")
        if key:
            out[key.strip().lower() if eq else key.strip()] = value.strip()
    return out


def resolve_control(base: str, control: str | None) -> str:
    """The URL a SETUP or PLAY targets: absolute controls as is, `*` and none as the base, and
    relative ones appended to the base with one `/`, as cameras and their peers expect."""
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    if control.startswith("?") or base.endswith("/"):
        return base + control
    return base + "/" + control
