"""Structured RTSP header fields: Transport, Session, RTP-Info and Range (RFC 2326 section 12)."""

from __future__ import annotations

import calendar
import contextlib
import re
import time
from dataclasses import dataclass, field

from opticlink.errors import RtspParseError


def _port_pair(value: str) -> tuple[int, int]:
    first, _, second = value.partition("-")
    try:
        a = int(first)
        b = int(second) if second else a + 1
    except ValueError:
        raise RtspParseError(f"Transport port range {value!r} is not numeric") from None
    if not (0 <= a <= 65535 and 0 <= b <= 65535):
        raise RtspParseError(f"Transport port range {value!r} is out of range")
    return a, b


@dataclass(slots=True)
class Transport:
    """One transport specification: RTP over TCP (interleaved channels) or UDP (port pairs)."""

    protocol: str = "RTP/AVP"
    unicast: bool = True
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    ssrc: int | None = None
    mode: str | None = None
    source: str | None = None
    destination: str | None = None
    other: dict[str, str] = field(default_factory=dict)

    @property
    def tcp(self) -> bool:
        return self.protocol.upper().endswith("/TCP") or self.interleaved is not None

    def __str__(self) -> str:
        parts = [self.protocol, "unicast" if self.unicast else "multicast"]
        if self.destination:
            parts.append(f"destination={self.destination}")
        if self.source:
            parts.append(f"source={self.source}")
        if self.interleaved is not None:
            parts.append(f"interleaved={self.interleaved[0]}-{self.interleaved[1]}")
        if self.client_port is not None:
            parts.append(f"client_port={self.client_port[0]}-{self.client_port[1]}")
        if self.server_port is not None:
            parts.append(f"server_port={self.server_port[0]}-{self.server_port[1]}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode:
            parts.append(f'mode="{self.mode}"')
        parts.extend(f"{k}={v}" if v else k for k, v in self.other.items())
        return ";".join(parts)

    @classmethod
    def parse(cls, value: str) -> Transport:
        items = [p.strip() for p in value.strip().split(";") if p.strip()]
        if not items or not items[0].upper().startswith("RTP/"):
            raise RtspParseError(f"Transport {value[:80]!r} is not RTP")
        t = cls(protocol=items[0])
        for item in items[1:]:
            key, _, val = item.partition("=")
            key = key.strip().lower()
            val = val.strip()
            if key == "unicast":
                t.unicast = True
            elif key == "multicast":
                t.unicast = False
            elif key == "interleaved":
                t.interleaved = _port_pair(val)
            elif key == "client_port":
                t.client_port = _port_pair(val)
            elif key == "server_port":
                t.server_port = _port_pair(val)
            elif key == "ssrc":
                try:
                    t.ssrc = int(val, 16) & 0xFFFFFFFF
                except ValueError:
                    t.other[key] = val
            elif key == "mode":
                t.mode = val.strip('"').upper()
            elif key == "source":
                t.source = val
            elif key == "destination":
                t.destination = val
            else:
                t.other[key] = val
        return t


def parse_transports(value: str) -> list[Transport]:
    """The comma-separated alternatives of a Transport header."""
    return [Transport.parse(part) for part in value.split(",") if part.strip()]


@dataclass(slots=True)
class SessionHeader:
    """Session identifier and the server's idle timeout in seconds (60 when not given)."""

    id: str
    timeout: float = 60.0

    @classmethod
    def parse(cls, value: str) -> SessionHeader:
        ident, _, rest = value.strip().partition(";")
        ident = ident.strip()
        if not ident:
            raise RtspParseError("empty Session header")
        timeout = 60.0
        for param in rest.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "timeout":
                with contextlib.suppress(ValueError):
                    timeout = float(val)
        if not 1 <= timeout <= 3600:
            timeout = 60.0
        return cls(ident, timeout)


@dataclass(slots=True)
class RtpInfo:
    """One stream's entry of PLAY's RTP-Info: the RTP state at the start of the play range."""

    url: str
    seq: int | None = None
    rtptime: int | None = None


def parse_rtp_info(value: str) -> list[RtpInfo]:
    """The entries of an RTP-Info header (malformed fields are left out, not fatal)."""
    out: list[RtpInfo] = []
    for entry in re.split(r",(?=\s*url=)", value):
        info = RtpInfo(url="")
        for param in entry.split(";"):
            key, _, val = param.strip().partition("=")
            key = key.lower()
            try:
                if key == "url":
                    info.url = val.strip().strip('"')
                elif key == "seq":
                    info.seq = int(val) & 0xFFFF
                elif key == "rtptime":
                    info.rtptime = int(val) & 0xFFFFFFFF
            except ValueError:
                continue
        if info.url:
            out.append(info)
    return out


@dataclass(slots=True)
class PlayRange:
    """A Range header: `npt` seconds, and the absolute `clock` start as Unix seconds when given."""

    npt_start: float | None = None
    npt_end: float | None = None
    clock_start: float | None = None


_CLOCK = re.compile(r"(\d{8})T(\d{6})(?:\.(\d+))?Z")


def parse_range(value: str) -> PlayRange:
    out = PlayRange()
    for spec in value.split(";"):
        unit, _, span = spec.strip().partition("=")
        unit = unit.strip().lower()
        start, _, end = span.partition("-")
        if unit == "npt":
            out.npt_start = _npt(start)
            out.npt_end = _npt(end)
        elif unit == "clock":
            match = _CLOCK.match(start.strip())
            if match:
                date, hms, frac = match.groups()
                try:
                    moment = time.strptime(date + hms, "%Y%m%d%H%M%S")
                except ValueError:
                    continue
                out.clock_start = calendar.timegm(moment) + (float("0." + frac) if frac else 0.0)
    return out


def _npt(value: str) -> float | None:
    value = value.strip()
    if not value or value == "now":
        return None
    try:
        if ":" in value:
            h, m, s = value.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        return float(value)
    except ValueError:
        return None
