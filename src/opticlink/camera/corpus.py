"""A regression corpus of real traffic, sans-IO: record what a camera sent, save it, replay it.

`TrafficRecorder` is fed the RTSP client's events (`opticlink probe --save FILE` does it): the
session (redacted URLs, the description, each track's setup, PLAY's RTP-Info and Range) and every
RTP and RTCP packet with its track and arrival time. `save()` writes it to a small file, `load()`
reads one back (any malformed or hostile file raises `CorpusError`, bounded in time and memory),
and `replay()` passes it through the same receive path a live `CameraSession` uses
(`CameraIngest` → `SyncEngine`, with `on_play` from the saved RTP-Info and Range) and returns
the frames, so a user's bug report becomes a test.

The RTSP exchange is kept as `rtsp` entries: each control message of the set-up as text (the
client's `Exchanged` events, at most `MAX_MESSAGES`), and the parsed steps (what was described,
set up and played, with the answers' RTP-Info, Range and Transport), and the description as the
client parsed it, serialized again.
No password is ever written: URL user information becomes `REDACTED`, `Authorization` values
are never kept, and `save()` refuses a header that still holds one of the recorder's secrets.

File format (version 1): a gzip stream of

    MAGIC (8 bytes) | u32 header length | header (UTF-8 JSON object)
    then `header["packets"]` records: u8 track | u8 flags (bit 0: RTCP) | u32 arrival (µs) |
                                      u16 length | data

all big-endian. Arrival times are microseconds after the first recorded event (the PLAY answer).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from opticlink import __version__
from opticlink.camera.ingest import CameraIngest
from opticlink.errors import OpticLinkError, SdpParseError
from opticlink.media import MediaFrame
from opticlink.rtp.formats import is_supported
from opticlink.rtsp.client import (
    BackchannelUnavailable,
    ClientConfig,
    Described,
    Event,
    Exchanged,
    Failed,
    Playing,
    RtcpReceived,
    RtpReceived,
    Track,
    TransportFallback,
    split_url,
)
from opticlink.rtsp.headers import PlayRange, RtpInfo
from opticlink.rtsp.sdp import SessionDescription
from opticlink.sync import SyncEngine, SyncStats
from opticlink.sync.engine import TrackInfo
from opticlink.sync.reports import SenderReportInfo

MAGIC = b"OLCORP\r\n"
VERSION = 1
# A corpus is a bug report's attachment and a test's fixture: a minute shows any start-up, Sender
# Report or drift problem, and 20 MB is a minute of a 2.5 Mbit/s camera, what a bug tracker takes.
MAX_SECONDS = 60.0
MAX_BYTES = 20 * 1024 * 1024  # payload bytes of all packets
MAX_PACKETS = 200_000  # a minute of even tiny packets (3 000 a second)
MAX_HEADER = 1024 * 1024  # the JSON header: description, setup, play
MAX_TRACKS = 32
MAX_MESSAGES = 48  # RTSP messages kept: the set-up of a dozen tracks twice over, and some keepalives
_RECORD = struct.Struct(">BBIH")
_MAX_RAW = len(MAGIC) + 4 + MAX_HEADER + MAX_PACKETS * _RECORD.size + MAX_BYTES  # decompressed bound
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"]*@")
REDACTED = "REDACTED"
REPLAY_BASE = 1000.0  # receiver clock (seconds) of a replay's first event: any positive time will do


class CorpusError(OpticLinkError):
    """A corpus file that cannot be read: not one, truncated, malformed, too large, or unusable."""


def redact_url(url: str) -> str:
    """`url` with any user information (user and password) replaced by REDACTED."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(rf"\1{REDACTED}@", url)
    if "@" not in parts.netloc:
        return _USERINFO.sub(rf"\1{REDACTED}@", url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{REDACTED}@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text (a description, an error) with URL user information and Authorization values redacted."""
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    return re.sub(r"(?im)^(\s*(?:proxy-)?authorization\s*:).*$", rf"\1 {REDACTED}", text)


@dataclass(slots=True)
class Packet:
    track: int
    rtcp: bool
    time: float  # seconds after the first recorded event
    data: bytes


@dataclass(slots=True)
class CorpusTrack:
    """A live track as set up: where it is in the description, and what SETUP and PLAY said."""

    index: int
    position: int  # its m= line among the description's
    payload_type: int
    kind: str
    url: str
    direction: str = "sendrecv"
    backchannel: bool = False
    transport: str | None = None  # the SETUP answer's Transport
    rtp_info: dict[str, Any] | None = None  # url, seq, rtptime of PLAY's RTP-Info


@dataclass(slots=True)
class Corpus:
    """What a camera sent in one session."""

    url: str  # redacted
    sdp: str
    tracks: list[CorpusTrack]
    packets: list[Packet] = field(default_factory=list)
    range: dict[str, float | None] | None = None  # PLAY's Range: npt_start, npt_end, clock_start
    transport: str = "tcp"
    rtsp: list[dict[str, Any]] = field(default_factory=list)  # the exchange, as parsed
    truncated: str | None = None  # why recording stopped before the end, if it did
    created_by: str = f"opticlink {__version__}"

    def header(self) -> dict[str, Any]:
        return {
            "version": VERSION, "created_by": self.created_by, "url": self.url, "transport": self.transport,
            "sdp": self.sdp, "range": self.range, "rtsp": self.rtsp, "truncated": self.truncated,
            "tracks": [{"index": t.index, "position": t.position, "payload_type": t.payload_type, "kind": t.kind,
                        "url": t.url, "direction": t.direction, "backchannel": t.backchannel,
                        "transport": t.transport, "rtp_info": t.rtp_info} for t in self.tracks],
            "packets": len(self.packets), "bytes": sum(len(p.data) for p in self.packets),
        }

    def to_bytes(self) -> bytes:
        header = json.dumps(self.header(), separators=(",", ":"), sort_keys=True).encode()
        if len(header) > MAX_HEADER:
            raise CorpusError(f"header of {len(header)} bytes is over {MAX_HEADER}")
        raw = io.BytesIO()
        raw.write(MAGIC)
        raw.write(struct.pack(">I", len(header)))
        raw.write(header)
        for p in self.packets:
            raw.write(_RECORD.pack(p.track, 1 if p.rtcp else 0, round(p.time * 1e6), len(p.data)))
            raw.write(p.data)
        return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())


class TrafficRecorder:
    """Fed a session's client events (`on_event`), keeps what the camera sent, within the caps."""

    def __init__(self, url: str, *, secrets: tuple[str, ...] = ()) -> None:
        self.url = redact_url(url)
        self.secrets = tuple(s for s in secrets if s)
        self.sdp: SessionDescription | None = None
        self.tracks: list[CorpusTrack] = []
        self.range: dict[str, float | None] | None = None
        self.transport = "tcp"
        self.rtsp: list[tuple[float, dict[str, Any]]] = []  # (when, entry) of each step
        self._messages = 0  # RTSP messages kept in `rtsp`
        self.packets: list[Packet] = []
        self.bytes = 0
        self.truncated: str | None = None
        self._origin: float | None = None
        self._playing = False

    @classmethod
    def for_config(cls, config: ClientConfig) -> TrafficRecorder:
        """A recorder that knows the config's password (and the URL's), so it can refuse to write it."""
        secrets = [config.password or ""]
        try:
            creds = split_url(config.url)[1]
        except ValueError:
            creds = None
        if creds is not None:
            secrets.append(creds.password)
        return cls(config.url, secrets=tuple(secrets))

    def on_event(self, event: Event, now: float) -> None:
        """One client event; `now` is when it happened (RTP and RTCP carry their own)."""
        if isinstance(event, RtpReceived | RtcpReceived):
            if self._playing:
                self._packet(event.track, isinstance(event, RtcpReceived), event.data, event.now)
        elif isinstance(event, Described):
            if self.packets:  # described again (redirected, reconnected): the corpus is the first session
                return
            self.sdp = event.sdp
            self._playing = False
            self.rtsp.append((now, {"step": "DESCRIBE", "status": 200, "base_url": redact_url(event.base_url),
                                    "tracks": [redact_url(t.url) for t in event.tracks]}))
        elif isinstance(event, Playing):
            self._on_playing(event, now)
        elif isinstance(event, TransportFallback):
            self.rtsp.append((now, {"step": "fallback", "failed": event.failed, "next": event.next,
                                    "reason": redact_text(event.reason)}))
        elif isinstance(event, BackchannelUnavailable):
            self.rtsp.append((now, {"step": "backchannel", "reason": redact_text(event.reason)}))
        elif isinstance(event, Failed):
            self.rtsp.append((now, {"step": event.error.step, "error": redact_text(str(event.error))}))
        elif isinstance(event, Exchanged) and self._messages < MAX_MESSAGES and not self.packets:  # the set-up
            self._messages += 1
            self.rtsp.append((event.now, {"step": "message", "direction": "sent" if event.sent else "received",
                                          "text": redact_text(event.text)}))

    def _on_playing(self, event: Playing, now: float) -> None:
        if self.packets:  # a second PLAY (reconnected): the corpus is the first session
            self.truncated = self.truncated or "the session started again"
            self._playing = False
            return
        media = self.sdp.media if self.sdp is not None else []
        self.tracks = []
        for track in event.tracks:
            if track.backchannel:
                continue
            position = next((i for i, m in enumerate(media) if m is track.media), None)
            if position is None:
                position = next((i for i, m in enumerate(media) if m == track.media), 0)
            info = track.rtp_info
            self.tracks.append(CorpusTrack(
                track.index, position, track.format.payload_type, track.kind, redact_url(track.url),
                track.direction, track.backchannel,
                redact_text(str(track.transport)) if track.transport is not None else None,
                {"url": redact_url(info.url), "seq": info.seq, "rtptime": info.rtptime} if info else None))
        r = event.range
        self.range = None if r is None else {"npt_start": r.npt_start, "npt_end": r.npt_end,
                                             "clock_start": r.clock_start}
        self.transport = event.transport
        self._origin = now  # arrival times count from the PLAY answer
        self.rtsp.append((now, {"step": "PLAY", "status": 200, "transport": event.transport,
                                "session_timeout": event.session_timeout, "range": self.range,
                                "rtp_info": [t.rtp_info for t in self.tracks],
                                "setup": [{"url": t.url, "transport": t.transport} for t in self.tracks]}))
        self._playing = True

    def _packet(self, track: int, rtcp: bool, data: bytes, now: float) -> None:
        if self.truncated is not None:
            return
        if self._origin is None:
            self._origin = now
        t = max(0.0, now - self._origin)
        if t > MAX_SECONDS:
            self.truncated = f"over {MAX_SECONDS:g} s"
        elif len(self.packets) >= MAX_PACKETS:
            self.truncated = f"over {MAX_PACKETS} packets"
        elif self.bytes + len(data) > MAX_BYTES:
            self.truncated = f"over {MAX_BYTES} bytes"
        elif not 0 <= track < MAX_TRACKS or len(data) > 0xFFFF:
            return
        else:
            self.packets.append(Packet(track, rtcp, t, bytes(data)))
            self.bytes += len(data)

    def corpus(self) -> Corpus:
        if self.sdp is None or not self.tracks:
            raise CorpusError("nothing to save: the camera never played")
        origin = self._origin if self._origin is not None else (self.rtsp[0][0] if self.rtsp else 0.0)
        rtsp = [{"t": round(when - origin, 6), **entry} for when, entry in self.rtsp]
        return Corpus(self.url, redact_text(self.sdp.serialize()), list(self.tracks), list(self.packets),
                      self.range, self.transport, rtsp, self.truncated)

    def _checked(self) -> Corpus:
        corpus = self.corpus()
        header = json.dumps(corpus.header())
        for secret in self.secrets:  # a last guard; short ones would match by chance
            if len(secret) >= 4 and (secret in header or json.dumps(secret)[1:-1] in header
                                     or quote(secret, safe="") in header):
                raise CorpusError("refusing to save: a password would be written")
        return corpus

    def to_bytes(self) -> bytes:
        return self._checked().to_bytes()

    def save(self, path: str | Path) -> Corpus:
        """Write the corpus to `path`; returns it."""
        corpus = self._checked()
        Path(path).write_bytes(corpus.to_bytes())
        return corpus


# Loading ----------------------------------------------------------------------------------------


def _decompress(data: bytes) -> bytes:
    """gunzip `data`, never producing more than `_MAX_RAW` bytes (a gzip bomb stops early)."""
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while True:
                out += inflater.decompress(rest, _MAX_RAW + 1 - len(out))
                if len(out) > _MAX_RAW:
                    raise CorpusError(f"more than {_MAX_RAW} bytes once decompressed")
                rest = inflater.unconsumed_tail
                if inflater.eof or not rest:
                    break
        except zlib.error as exc:
            raise CorpusError(f"not a gzip stream: {exc}") from None
        if not inflater.eof:
            raise CorpusError("truncated: the compressed stream ends early")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)
        # gzip allows several members; more than one is unusual but legal


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a corpus holds")


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise CorpusError(f"header field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def from_bytes(data: bytes) -> Corpus:
    """Parse a corpus file's bytes; raises `CorpusError` for anything but a well-formed corpus."""
    if data[:2] != b"\x1f\x8b":
        raise CorpusError("not a corpus file (not gzip)")
    raw = memoryview(_decompress(data))
    if bytes(raw[:len(MAGIC)]) != MAGIC:
        raise CorpusError("not a corpus file (bad magic)")
    pos = len(MAGIC)
    if len(raw) < pos + 4:
        raise CorpusError("truncated header")
    (length,) = struct.unpack_from(">I", raw, pos)
    pos += 4
    if length > MAX_HEADER:
        raise CorpusError(f"header of {length} bytes is over {MAX_HEADER}")
    if len(raw) < pos + length:
        raise CorpusError("truncated header")
    try:
        header = json.loads(bytes(raw[pos:pos + length]).decode(), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorpusError(f"header is not JSON: {exc}") from None
    pos += length
    if not isinstance(header, dict):
        raise CorpusError("header is not a JSON object")
    version = _get(header, "version", int)
    if version != VERSION:
        raise CorpusError(f"corpus version {version} is not supported (this is version {VERSION})")
    count = _get(header, "packets", int)
    total = _get(header, "bytes", int)
    if not 0 <= count <= MAX_PACKETS or not 0 <= total <= MAX_BYTES:
        raise CorpusError(f"{count} packets, {total} bytes: over the limits")
    tracks = []
    track_list = _get(header, "tracks", list)
    if len(track_list) > MAX_TRACKS:
        raise CorpusError(f"more than {MAX_TRACKS} tracks")
    for entry in track_list:
        if not isinstance(entry, dict):
            raise CorpusError("a track is not a JSON object")
        rtp_info = _get(entry, "rtp_info", dict, optional=True)
        if rtp_info is not None:
            rtp_info = {"url": _get(rtp_info, "url", str), "seq": _get(rtp_info, "seq", int, optional=True),
                        "rtptime": _get(rtp_info, "rtptime", int, optional=True)}
        tracks.append(CorpusTrack(
            _get(entry, "index", int), _get(entry, "position", int), _get(entry, "payload_type", int),
            _get(entry, "kind", str), _get(entry, "url", str), _get(entry, "direction", str),
            bool(_get(entry, "backchannel", bool)), _get(entry, "transport", str, optional=True), rtp_info))
    play_range = _get(header, "range", dict, optional=True)
    if play_range is not None:
        play_range = {k: _get(play_range, k, (int, float), optional=True) for k in ("npt_start", "npt_end",
                                                                                   "clock_start")}
    rtsp = _get(header, "rtsp", list)
    if not all(isinstance(e, dict) for e in rtsp):
        raise CorpusError("an rtsp entry is not a JSON object")
    packets: list[Packet] = []
    seen = 0
    for _ in range(count):
        if len(raw) < pos + _RECORD.size:
            raise CorpusError(f"truncated: {len(packets)} of {count} packets")
        track, flags, micros, size = _RECORD.unpack_from(raw, pos)
        pos += _RECORD.size
        if len(raw) < pos + size:
            raise CorpusError(f"truncated: {len(packets)} of {count} packets")
        if flags & ~1:
            raise CorpusError(f"packet {len(packets)} has unknown flags {flags:#x}")
        packets.append(Packet(track, bool(flags & 1), micros / 1e6, bytes(raw[pos:pos + size])))
        pos += size
        seen += size
    if pos != len(raw):
        raise CorpusError(f"{len(raw) - pos} bytes after the last packet")
    if seen != total:
        raise CorpusError(f"packets hold {seen} bytes, the header says {total}")
    corpus = Corpus(_get(header, "url", str), _get(header, "sdp", str), tracks, packets, play_range,
                    _get(header, "transport", str), rtsp, _get(header, "truncated", str, optional=True),
                    _get(header, "created_by", str))
    build_tracks(corpus)  # the description and the tracks must fit together
    return corpus


def load(path: str | Path) -> Corpus:
    """Read a corpus file; raises `CorpusError` when it is not a well-formed one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_RAW:
            raise CorpusError(f"{path}: {size} bytes is too large for a corpus")
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: {exc.strerror or exc}") from None
    try:
        return from_bytes(data)
    except CorpusError as exc:
        raise CorpusError(f"{path}: {exc}") from None


# Replaying --------------------------------------------------------------------------------------


@dataclass(slots=True)
class TrackReplayStats:
    track: int
    kind: str
    codec: str
    packets: int
    bytes: int
    units: int
    frames: int
    lost: int
    reordered: int
    late: int
    duplicates: int
    malformed: int
    sender_reports: int


@dataclass(slots=True)
class ReplayResult:
    """What the receive path made of a corpus."""

    frames: list[MediaFrame]
    tracks: dict[int, TrackReplayStats]
    sync: SyncStats
    reports: list[SenderReportInfo]  # every Sender Report, arrival on the replay's clock
    epoch: float  # the replay clock's timeline zero (the PLAY answer): pts_us counts from it


def build_tracks(corpus: Corpus) -> list[Track]:
    """The client's `Track`s again, from the saved description and setup."""
    try:
        sdp = SessionDescription.parse(corpus.sdp)
    except SdpParseError as exc:
        raise CorpusError(f"the saved description does not parse: {exc}") from None
    tracks = []
    for t in corpus.tracks:
        if not 0 <= t.position < len(sdp.media):
            raise CorpusError(f"track {t.index}: no media section {t.position} in the description")
        media = sdp.media[t.position]
        fmt = next((f for f in media.formats if f.payload_type == t.payload_type), None)
        if fmt is None:
            raise CorpusError(f"track {t.index}: no payload type {t.payload_type} in media section {t.position}")
        if not is_supported(fmt):
            raise CorpusError(f"track {t.index}: {fmt.encoding} is not a format we receive")
        track = Track(t.index, media, fmt, t.url, backchannel=t.backchannel, direction=t.direction)
        if t.rtp_info is not None:
            track.rtp_info = RtpInfo(t.rtp_info["url"], t.rtp_info["seq"], t.rtp_info["rtptime"])
        tracks.append(track)
    if len({t.index for t in tracks}) != len(tracks):
        raise CorpusError("two tracks have the same index")
    return tracks


def replay(corpus: Corpus, *, jitter_wait: float = 0.05, audio_offset_ms: float = 0.0) -> ReplayResult:
    """Pass the corpus through the live receive path, its timers served at their deadlines."""
    tracks = build_tracks(corpus)
    base = REPLAY_BASE
    ingest = CameraIngest(tracks, jitter_wait=jitter_wait)
    live = [t for t in tracks if not t.backchannel]
    engine = SyncEngine([TrackInfo(t.index, t.kind, t.format.clock_rate) for t in live], epoch=base,
                        audio_offset_ms=audio_offset_ms)
    rtptimes = {t.index: t.rtp_info.rtptime for t in live if t.rtp_info is not None and t.rtp_info.rtptime is not None}
    play_range = PlayRange(**corpus.range) if corpus.range else None
    engine.on_play(rtptimes, play_range.clock_start if play_range else None)
    frames: list[MediaFrame] = []
    reports: list[SenderReportInfo] = []
    counts = {t.index: 0 for t in live}

    def deliver(units: list, now: float) -> None:
        for index, unit in units:
            frame = engine.push_unit(index, unit, now)
            if frame is not None:
                frames.append(frame)
                counts[index] += 1

    def serve_timers(until: float) -> None:
        while (deadline := ingest.deadline()) is not None and deadline <= until:
            deliver(ingest.poll(deadline), deadline)
            ingest.receiver_reports(deadline)
            if ingest.deadline() == deadline:  # nothing moved it on: go on at the packet's time
                break

    for packet in corpus.packets:
        now = base + packet.time
        serve_timers(now)
        if packet.rtcp:
            for info in ingest.on_rtcp(packet.track, packet.data, now):
                reports.append(info)
                engine.push_sender_report(info)
        else:
            deliver(ingest.on_rtp(packet.track, packet.data, now), now)
        ingest.receiver_reports(now)
    end = base + (corpus.packets[-1].time if corpus.packets else 0.0) + 1.0
    serve_timers(end)  # what the jitter buffers still hold comes out as the session would
    stats = {}
    for index, state in ingest.states.items():
        receiver = state.receiver
        snap = receiver.stats.snapshot()
        stats[index] = TrackReplayStats(
            index, state.track.kind, state.track.format.encoding, snap.packets, snap.bytes, receiver.units,
            counts.get(index, 0), receiver.buffer.lost, snap.reordered, snap.late, snap.duplicates,
            receiver.malformed + getattr(receiver.depacketizer, "malformed", 0), state.reports)
    return ReplayResult(frames, stats, engine.stats(), reports, base)
