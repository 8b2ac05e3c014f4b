"""RTSP/1.0 messages (RFC 2326) and the interleaved binary frames that share their TCP stream.

`RtspReader` is fed bytes as they arrive and returns whole requests, responses and
`$`-framed RTP/RTCP packets. Malformed input raises `RtspParseError`, after which the stream is
unusable (there is no resynchronising a byte stream whose framing is lost).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from opticlink.errors import RtspParseError

# Caps on what a camera may make us hold before a message is whole; past them the connection is
# failed ("malformed data from the camera: ..."). A real RTSP head is under 2 KB (a Digest challenge,
# an RTP-Info line per track): 64 KiB is 30 times that, and bounds a header that never ends.
MAX_HEADER_BYTES = 64 * 1024
# The largest body a camera sends is its SDP: a few KB, tens with many tracks and long parameter
# sets. 1 MiB bounds a huge Content-Length (no byte of it is buffered before the limit is checked).
MAX_BODY_BYTES = 1024 * 1024
# Real messages carry 5-15 header lines; 128 bounds the work of parsing one head.
MAX_HEADERS = 128
_METHOD = re.compile(r"[A-Za-z][A-Za-z_-]*\Z")
_DIGITS = re.compile(r"[0-9]+\Z")


class Headers:
    """An ordered, case-insensitive multi-map of header fields."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | dict[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, dict) else items
        self._items: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]

    def get(self, name: str, default: str | None = None) -> str | None:
        lower = name.lower()
        for key, value in self._items:
            if key.lower() == lower:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for k, v in self._items if k.lower() == lower]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.remove(name)
        self._items.append((name, str(value)))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, str(value)))

    def remove(self, name: str) -> None:
        lower = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lower]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def encode(self) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in self._items).encode("utf-8")


@dataclass(slots=True)
class RtspRequest:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> int | None:
        return _cseq(self.headers)

    def serialize(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} RTSP/1.0", self.headers, self.body)


@dataclass(slots=True)
class RtspResponse:
    status: int
    reason: str = "OK"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> int | None:
        return _cseq(self.headers)

    def serialize(self) -> bytes:
        return _serialize(f"RTSP/1.0 {self.status} {self.reason}", self.headers, self.body)


@dataclass(slots=True)
class InterleavedFrame:
    """An RTP or RTCP packet carried in the RTSP TCP stream (`$`, channel, 16-bit length)."""

    channel: int
    data: bytes

    def serialize(self) -> bytes:
        return interleaved(self.channel, self.data)


RtspMessage = RtspRequest | RtspResponse | InterleavedFrame


def interleaved(channel: int, data: bytes) -> bytes:
    """The wire form of an interleaved frame."""
    if len(data) > 0xFFFF:
        raise ValueError(f"interleaved frame of {len(data)} bytes exceeds 65535")
    return b"$" + bytes([channel & 0xFF]) + len(data).to_bytes(2, "big") + data


def _cseq(headers: Headers) -> int | None:
    value = headers.get("CSeq")
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    if body and "Content-Length" not in headers:
        headers = Headers([*headers, ("Content-Length", str(len(body)))])
    return start_line.encode("utf-8") + b"\r\n" + headers.encode() + b"\r\n" + body


class RtspReader:
    """Incremental parser of an RTSP byte stream (either direction)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[RtspRequest | RtspResponse, int] | None = None  # message awaiting body
        self._searched = 0  # bytes at the buffer's start already searched for a head's end

    def feed(self, data: bytes | memoryview) -> list[RtspMessage]:
        """Append received bytes; returns every message now complete, in order."""
        buf = self._buf
        buf += data
        out: list[RtspMessage] = []
        pos, n = 0, len(buf)
        view = memoryview(buf)  # an interleaved frame's bytes are copied once, from here (released below)
        try:
            pos = self._parse(buf, view, pos, n, out)
        finally:
            view.release()
        del buf[:pos]
        return out

    def _parse(self, buf: bytearray, view: memoryview, pos: int, n: int, out: list[RtspMessage]) -> int:
        """Parse the messages in `buf` from `pos` into `out`; returns where the incomplete rest starts."""
        while pos < n:
            if self._pending is not None:
                message, length = self._pending
                if n - pos < length:
                    break
                message.body = bytes(buf[pos : pos + length])
                pos += length
                self._pending = None
                out.append(message)
                continue
            first = buf[pos]
            if first == 0x24:  # '$'
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                end = pos + 4 + length
                if end > n:
                    break
                out.append(InterleavedFrame(buf[pos + 1], bytes(view[pos + 4 : end])))
                pos = end
                continue
            if first in (0x0D, 0x0A):  # stray line ends between messages
                pos += 1
                continue
            # a head arriving a byte at a time is searched from where the last search ended, not anew
            start = max(pos, self._searched - 3) if pos == 0 else pos
            end = buf.find(b"\r\n\r\n", start)
            sep = 4
            if end < 0:
                end = buf.find(b"\n\n", start)
                sep = 2
            if end < 0:
                if n - pos > MAX_HEADER_BYTES:
                    raise RtspParseError(f"RTSP header block exceeds {MAX_HEADER_BYTES} bytes")
                self._searched = n if pos == 0 else 0
                break
            self._searched = 0
            if end - pos > MAX_HEADER_BYTES:
                raise RtspParseError(f"RTSP header block exceeds {MAX_HEADER_BYTES} bytes")
            message = _parse_head(bytes(buf[pos:end]))
            pos = end + sep
            length = _content_length(message.headers)
            if length:
                self._pending = (message, length)
            else:
                out.append(message)
        return pos


def _parse_head(head: bytes) -> RtspRequest | RtspResponse:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    headers = Headers()
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and len(headers):
            name, value = headers._items[-1]
            headers._items[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t"):
            raise RtspParseError(f"malformed RTSP header line {line[:80]!r}")
        headers.add(name.strip(), value.strip())
        if len(headers) > MAX_HEADERS:
            raise RtspParseError(f"RTSP message has more than {MAX_HEADERS} headers")
    parts = start.split(" ", 2)
    if start.startswith("RTSP/"):
        if not start.startswith("RTSP/1.") or len(parts) < 2 or not _DIGITS.match(parts[1]) or len(parts[1]) != 3:
            raise RtspParseError(f"malformed RTSP status line {start[:80]!r}")
        return RtspResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)
    if len(parts) != 3 or not parts[2].startswith("RTSP/1.") or not _METHOD.match(parts[0]):
        raise RtspParseError(f"malformed RTSP request line {start[:80]!r}")
    return RtspRequest(parts[0].upper(), parts[1], headers)


def _content_length(headers: Headers) -> int:
    value = headers.get("Content-Length")
    if value is None:
        return 0
    value = value.strip()
    if not _DIGITS.match(value):
        raise RtspParseError(f"RTSP Content-Length {value[:20]!r} is not a number")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise RtspParseError(f"RTSP body of {length} bytes exceeds {MAX_BODY_BYTES}")
    return length
