"""RTSP client session, sans-IO: OPTIONS, DESCRIBE, SETUP, PLAY, keepalive, TEARDOWN.

`RtspClientConnection` never touches a socket or a clock. Feed it what the camera sent with
`receive_data(data, now)` (and, over UDP, `receive_datagram`), send what `data_to_send()` and
`datagrams_to_send()` return, serve `get_timer()` with `handle_timer(now)`, and read what
happened from `next_event()`. Times are seconds on any monotonic clock.

With `backchannel=True` the ONVIF backchannel is asked for (`Require:
www.onvif.org/ver20/backchannel` on DESCRIBE, SETUP and PLAY) and its `sendonly` audio section is
set up; a camera that refuses (551, or any failure of DESCRIBE, SETUP or PLAY) is asked again
without it, so the live tracks play either way.

Transport (`ClientConfig.transport`) is an order to try: `auto` is TCP interleaved, then UDP (as
FFmpeg and VLC fall back); `udp,tcp` the reverse; `tcp` or `udp` alone never fall back. The next
transport is tried when a SETUP fails (any answer but 200, 401 and the backchannel's 551; no
answer in `request_timeout`; an unusable Transport reply; the camera closing the connection) or
when PLAY succeeded but not one RTP or RTCP packet arrived within `stall_timeout` (FFmpeg's
UDP-to-TCP rule). It starts over cleanly: the session so far is torn down and every track set up
again on the same connection; when the connection is gone or hung, `TransportFallback.reconnect`
asks the adapter to drive `successor()` on a new one. Media that stops after it once flowed is a
failure (the camera session reconnects), not a fallback.

Over UDP, datagrams count only from the camera: the RTSP peer's address (or the SETUP reply's
`source`, RFC 2326 section 12.39), and the SETUP reply's `server_port` pair, as gortsplib checks
(servers send from the ports they receive on: symmetric RTP, RFC 4961, and RFC 7826's `src_addr`).
Others are dropped and counted in `datagrams_dropped`; `udp_any_port` relaxes the port check for
cameras that send from other ports than they announce.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from opticlink import __version__
from opticlink.errors import RtspError, RtspParseError, SdpParseError
from opticlink.rtp.formats import RtpFormat, is_supported
from opticlink.rtsp.auth import Authenticator, best_challenge, parse_challenges
from opticlink.rtsp.headers import (
    PlayRange,
    RtpInfo,
    SessionHeader,
    Transport,
    parse_range,
    parse_rtp_info,
)
from opticlink.rtsp.message import (
    Headers,
    InterleavedFrame,
    RtspReader,
    RtspRequest,
    RtspResponse,
    interleaved,
)
from opticlink.rtsp.sdp import MediaDescription, SessionDescription, resolve_control

BACKCHANNEL_REQUIRE = "www.onvif.org/ver20/backchannel"
BACKCHANNEL_FORMATS = ("PCMU", "PCMA", "L16", "MPEG4-GENERIC")
# A camera describes a video, an audio, a metadata and a backchannel section; multi-sensor and
# multi-stream cameras a few more. A description with more than MAX_MEDIA_SECTIONS is refused (it is
# broken or hostile: each section would cost a SETUP and a state in every status); at most MAX_TRACKS
# are set up, which also keeps every interleaved channel (2 per track) within its one byte.
MAX_MEDIA_SECTIONS = 64
MAX_TRACKS = 16
NO_PACKETS_AFTER = 3.0  # seconds without RTP on a playing track before its state says "no packets"

TransportChoice = Literal["auto", "tcp", "udp", "tcp,udp", "udp,tcp"]
TRANSPORT_ORDERS: dict[str, tuple[str, ...]] = {
    "auto": ("tcp", "udp"), "tcp": ("tcp",), "udp": ("udp",), "tcp,udp": ("tcp", "udp"), "udp,tcp": ("udp", "tcp"),
}


def transport_order(choice: str) -> tuple[str, ...]:
    """The lower transports to try, in order; raises ValueError for an unknown choice."""
    try:
        return TRANSPORT_ORDERS[choice.replace(" ", "").lower()]
    except KeyError:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORT_ORDERS)}, not {choice!r}") from None


@dataclass(slots=True)
class ClientConfig:
    """How to reach a camera. Defaults are what a camera user expects."""

    url: str
    username: str | None = None  # given apart; else taken from the URL
    password: str | None = None
    transport: TransportChoice = "auto"  # TCP interleaved then UDP; "tcp"/"udp" only; "udp,tcp" UDP first
    udp_any_port: bool = False  # over UDP, take the camera's datagrams from any port, not only server_port
    basic_auth: bool = False  # answer a Basic challenge (the password in clear): only over a trusted link
    backchannel: bool = False  # ask for the ONVIF audio backchannel
    only_backchannel: bool = False  # set up the backchannel alone (a talk session beside the live one)
    describe_only: bool = False  # stop after DESCRIBE: what the camera offers, nothing set up (speaker check)
    request_timeout: float = 10.0  # seconds to wait for any response
    connect_timeout: float = 5.0  # seconds for the TCP connection: SYN retransmissions at 1 and 3 s, and a loaded host
    stall_timeout: float = 10.0  # seconds without media while playing before giving up
    user_agent: str = f"OpticLink/{__version__}"


@dataclass(slots=True)
class Track:
    """A media section we set up: a live track we receive, or the backchannel we send on."""

    index: int
    media: MediaDescription
    format: RtpFormat
    url: str
    backchannel: bool = False
    transport: Transport | None = None
    channels: tuple[int, int] | None = None  # interleaved RTP and RTCP channels
    client_ports: tuple[int, int] | None = None
    server_ports: tuple[int, int] | None = None
    ssrc: int | None = None
    rtp_info: RtpInfo | None = None
    direction: str = "sendrecv"  # the section's effective direction (its own, else the session's)
    last_packet: float | None = None  # when the last RTP packet arrived

    @property
    def kind(self) -> str:
        return self.media.kind

    @property
    def lower_transport(self) -> str | None:
        """"tcp" (interleaved) or "udp" once set up, else None."""
        if self.channels is not None:
            return "tcp"
        return "udp" if self.server_ports is not None or self.client_ports is not None else None

    def reset_setup(self) -> None:
        """Forget what SETUP and PLAY gave (before the track is set up again)."""
        self.transport = self.channels = self.client_ports = self.server_ports = None
        self.ssrc = self.rtp_info = self.last_packet = None

    def describe(self) -> str:
        fmt = self.format
        role = "backchannel" if self.backchannel else "live"
        return f"{self.kind} {fmt.encoding}/{fmt.clock_rate} ({role})"


@dataclass(slots=True)
class SkippedMedia:
    """A media section of the description that is not set up, and why (`unsupported codec MPA`)."""

    position: int  # the section's place among the description's m= lines
    media: MediaDescription
    direction: str
    reason: str


@dataclass(slots=True)
class MediaState:
    """One media section of the camera's description and what became of it."""

    position: int  # place among the m= lines
    kind: str  # video, audio, application...
    codec: str  # encoding/clock rate[/channels] of its first format, or "?"
    direction: str  # effective: its own, else the session's, else sendrecv
    state: str  # playing, no packets, not playing, backchannel, unsupported codec X, inactive, ...
    track: int | None = None  # our track index when set up


# Events ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Described:
    """DESCRIBE succeeded: the description, and the tracks that will be set up."""

    sdp: SessionDescription
    base_url: str
    tracks: list[Track]


@dataclass(slots=True)
class UdpPortsRequired:
    """UDP transport: bind a port pair per track, then call `provide_udp_ports`."""

    tracks: list[Track]


@dataclass(slots=True)
class BackchannelUnavailable:
    """The backchannel was asked for but the camera does not offer or refused it."""

    reason: str


@dataclass(slots=True)
class Playing:
    """PLAY succeeded. `range` carries `clock=` when the camera gave an absolute start;
    `transport` is the lower transport in use ("tcp" or "udp")."""

    tracks: list[Track]
    range: PlayRange | None
    session_timeout: float
    transport: str = "tcp"


@dataclass(slots=True)
class TransportFallback:
    """`failed` did not work (`reason`); the session starts over with `next`. With `reconnect`,
    the connection is gone or hung: connect anew and drive `successor()` (this one closes)."""

    failed: str
    next: str
    reason: str
    reconnect: bool = False


@dataclass(slots=True)
class RtpReceived:
    track: int
    data: bytes
    now: float


@dataclass(slots=True)
class RtcpReceived:
    track: int
    data: bytes
    now: float


@dataclass(slots=True)
class Redirected:
    """The camera sent us elsewhere; connect to `url` with a new connection."""

    url: str


@dataclass(slots=True)
class Failed:
    """The session cannot go on: the step, and what the camera did."""

    error: RtspError


@dataclass(slots=True)
class Closed:
    """Nothing more will happen on this connection."""


@dataclass(slots=True)
class Exchanged:
    """An RTSP message sent to or received from the camera, as text (a bug report's evidence).

    `Authorization` values are masked; a message longer than `MAX_EXCHANGED_BYTES` is cut."""

    sent: bool
    text: str
    now: float


Event = (Described | UdpPortsRequired | BackchannelUnavailable | Playing | TransportFallback | RtpReceived
         | RtcpReceived | Redirected | Failed | Closed | Exchanged)


class State(enum.Enum):
    INIT = "init"
    OPTIONS = "options"
    DESCRIBE = "describe"
    AWAIT_PORTS = "await-ports"
    SETUP = "setup"
    PLAY = "play"
    PLAYING = "playing"
    TEARDOWN = "teardown"
    CLOSED = "closed"


@dataclass(slots=True)
class _Pending:
    request: RtspRequest
    on_response: Callable[[RtspResponse, float], None]
    sent: float
    authorized: bool = False
    on_timeout: Callable[[], None] | None = None  # else no answer in time fails the session


@dataclass(slots=True)
class Credentials:
    username: str
    password: str


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***` (the user name kept), for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None and "@" not in parts.netloc:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, f"{user}:***@{host}" if user else f"***@{host}", parts.path,
                           parts.query, parts.fragment))
    except ValueError:
        head, at, tail = url.rpartition("@")
        return f"{head.split('//', 1)[0]}//***@{tail}" if at else url


def split_url(url: str) -> tuple[str, Credentials | None]:
    """The URL without its user information, and the credentials it carried."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"malformed URL {redact_url(url)!r}: {exc}") from None
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise ValueError(f"not an RTSP URL: {redact_url(url)!r}")
    if not parts.hostname:
        raise ValueError(f"RTSP URL has no host: {redact_url(url)!r}")
    creds = None
    if parts.username is not None:
        creds = Credentials(unquote(parts.username), unquote(parts.password or ""))
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, "")), creds


class RtspClientConnection:
    """One RTSP control connection to a camera, from OPTIONS to TEARDOWN."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.url, url_creds = split_url(config.url)
        if config.username is not None:
            self.credentials: Credentials | None = Credentials(config.username, config.password or "")
        else:
            self.credentials = url_creds
        self.state = State.INIT
        self.tracks: list[Track] = []
        self.sdp: SessionDescription | None = None
        self.base_url = self.url
        self.session: SessionHeader | None = None
        self.public_methods: set[str] = set()
        self.backchannel_wanted = config.backchannel
        self.play_range: PlayRange | None = None
        order = transport_order(config.transport)
        self.transport = order[0]  # the lower transport being tried or used: "tcp" or "udp"
        self.fallbacks: list[str] = []  # each transport given up, and why
        self.skipped: list[SkippedMedia] = []
        self.peer_host: str | None = None  # the camera's address, for UDP source checks
        self.datagrams_dropped = 0  # UDP datagrams from elsewhere than the camera
        self.frames_unrouted = 0  # interleaved frames on a channel no track was set up on
        self._remaining = list(order[1:])
        self._switched_here = False  # switched transport on this connection, not answered yet
        self._previous: str | None = None  # the transport given up last
        self._successor_order: tuple[str, ...] = ()
        self._media_seen = False
        self._play_time: float | None = None
        self._reader = RtspReader()
        self._out = bytearray()
        self._datagrams: list[tuple[int, bool, bytes]] = []
        self._events: deque[Event] = deque()
        self._pending: dict[int, _Pending] = {}
        self._cseq = 0
        self._auth: Authenticator | None = None
        self._channel_map: dict[int, tuple[int, bool]] = {}
        self._setup_index = 0
        self._last_keepalive = 0.0
        self._last_media = 0.0
        self._now = 0.0

    # Driving the connection -------------------------------------------------------------------

    def start(self, now: float, peer_host: str | None = None) -> None:
        """Begin the session (OPTIONS, then DESCRIBE); `peer_host` is the address connected to."""
        self._now = now
        self.peer_host = peer_host
        self.state = State.OPTIONS
        self._request("OPTIONS", self.url, self._on_options)

    def receive_data(self, data: bytes | memoryview, now: float) -> None:
        """Bytes received on the RTSP connection; what is kept is copied, so `data` may be a view of a read buffer."""
        self._now = now
        if self.state == State.CLOSED:
            return
        try:
            messages = self._reader.feed(data)
        except RtspParseError as exc:
            self._fail("stream", f"malformed data from the camera: {exc}")
            return
        channels, events, tracks = self._channel_map, self._events, self.tracks
        for message in messages:
            if message.__class__ is InterleavedFrame:
                target = channels.get(message.channel)
                if target is None:
                    self.frames_unrouted += 1
                    continue
                index, is_rtcp = target
                self._last_media = now
                self._media_seen = True
                if is_rtcp:
                    events.append(RtcpReceived(index, message.data, now))
                else:
                    tracks[index].last_packet = now
                    events.append(RtpReceived(index, message.data, now))
                continue  # media cannot close the connection
            if isinstance(message, RtspResponse):
                self._events.append(Exchanged(False, _exchanged_text(message.serialize()), now))
                self._on_response(message, now)
            else:
                self._events.append(Exchanged(False, _exchanged_text(message.serialize()), now))
                self._on_server_request(message)
            if self.state == State.CLOSED:
                return
            tracks = self.tracks  # a response may have set the tracks anew

    def receive_datagram(self, track: int, rtcp: bool, data: bytes, now: float,
                         source: tuple[str, int] | None = None) -> None:
        """A UDP datagram that arrived on `track`'s RTP (or RTCP) port from `source` (host, port)."""
        if self.state in (State.CLOSED, State.TEARDOWN) or not 0 <= track < len(self.tracks):
            return
        if source is not None and not self._from_camera(self.tracks[track], rtcp, source):
            self.datagrams_dropped += 1
            return
        self._last_media = now
        self._media_seen = True
        if rtcp:
            self._events.append(RtcpReceived(track, data, now))
        else:
            self.tracks[track].last_packet = now
            self._events.append(RtpReceived(track, data, now))

    def _from_camera(self, track: Track, rtcp: bool, source: tuple[str, int]) -> bool:
        announced = track.transport.source if track.transport is not None else None
        host = announced if announced and _ip(announced) is not None else self.peer_host
        if host is not None and not _same_host(source[0], host):
            return False
        if track.server_ports is None or self.config.udp_any_port:
            return True
        return source[1] == track.server_ports[1 if rtcp else 0]

    def connection_lost(self, now: float, reason: str = "") -> None:
        """The TCP connection closed or failed."""
        self._now = now
        if self.state == State.CLOSED:
            return
        if self.state == State.TEARDOWN:
            self._close()
            return
        detail = f": {reason}" if reason else ""
        if self.state in (State.SETUP, State.AWAIT_PORTS):
            if self._switched_here:  # the new transport never got its chance: try it again anew
                self._reconnect((self.transport, *self._remaining), self._previous or self.transport,
                                f"the camera closed the connection{detail}")
                return
            if self._fall_back(f"the camera closed the connection during SETUP{detail}", reconnect=True):
                return
        self._fail("connection", f"the camera closed the connection{detail}{self._history()}")

    def provide_udp_ports(self, ports: dict[int, tuple[int, int]]) -> None:
        """Local RTP/RTCP port pairs for each track (answer to `UdpPortsRequired`)."""
        if self.state != State.AWAIT_PORTS:
            return
        for track in self.tracks:
            track.client_ports = ports[track.index]
        self.state = State.SETUP
        self._setup_next()

    def successor(self) -> RtspClientConnection:
        """After `TransportFallback(reconnect=True)`: the connection to drive on a new socket."""
        order = self._successor_order or (self.transport, *self._remaining)
        nxt = RtspClientConnection(dataclasses.replace(self.config, transport=",".join(order)))  # type: ignore[arg-type]
        nxt.fallbacks = list(self.fallbacks)
        nxt.datagrams_dropped = self.datagrams_dropped
        return nxt

    def media_states(self, now: float) -> list[MediaState]:
        """Every media section of the description, with what became of it (empty before DESCRIBE).

        A live track is `playing`, or `no packets` when playing without RTP for `NO_PACKETS_AFTER`
        seconds, or `not playing` when the session is not (yet, or any more) playing."""
        if self.sdp is None:
            return []
        out: dict[int, MediaState] = {}
        positions = {id(m): i for i, m in enumerate(self.sdp.media)}
        for track in self.tracks:
            position = positions.get(id(track.media))
            if position is None:
                continue
            if track.backchannel:
                state = "backchannel"
            elif self.state != State.PLAYING:
                state = "not playing"
            else:
                since = next((t for t in (track.last_packet, self._play_time) if t is not None), now)
                state = "no packets" if now - since >= NO_PACKETS_AFTER else "playing"
            out[position] = MediaState(position, track.kind, _codec(track.media), track.direction, state, track.index)
        for skipped in self.skipped:
            out.setdefault(skipped.position, MediaState(skipped.position, skipped.media.kind, _codec(skipped.media),
                                                        skipped.direction, skipped.reason))
        return [out[i] for i in sorted(out)]

    def send_rtp(self, track: int, data: bytes) -> None:
        """Send an RTP packet on a track (the backchannel)."""
        self._send_media(track, False, data)

    def send_rtcp(self, track: int, data: bytes) -> None:
        """Send an RTCP packet for a track (receiver reports, backchannel sender reports)."""
        self._send_media(track, True, data)

    def teardown(self, now: float) -> None:
        """End the session politely; `Closed` follows the answer (or its timeout)."""
        self._now = now
        if self.state in (State.CLOSED, State.TEARDOWN):
            return
        if self.session is None:
            self._close()
            return
        self.state = State.TEARDOWN
        self._pending.clear()
        self._request("TEARDOWN", self._aggregate_url(), lambda r, n: self._close())

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def datagrams_to_send(self) -> list[tuple[int, bool, bytes]]:
        """UDP datagrams as (track index, is RTCP, data), for the server's ports of that track."""
        out = self._datagrams
        self._datagrams = []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The next time `handle_timer` must run, or None."""
        deadlines = [p.sent + self.config.request_timeout for p in self._pending.values()]
        if self.state == State.PLAYING and self.session is not None:
            deadlines.append(self._last_keepalive + self.session.timeout / 2)
            if not self.config.only_backchannel:
                deadlines.append(self._last_media + self.config.stall_timeout)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self._now = now
        for cseq, pending in list(self._pending.items()):
            if now >= pending.sent + self.config.request_timeout:
                if self.state == State.TEARDOWN:
                    self._close()
                    return
                if pending.on_timeout is not None:
                    del self._pending[cseq]
                    pending.on_timeout()
                    return
                method, waited = pending.request.method, f"no answer in {self.config.request_timeout:g} s"
                if method == "SETUP" and self._fall_back(f"SETUP got {waited}", reconnect=True):
                    return
                self._fail(method, waited + (self._history() if method == "SETUP" else ""))
                return
        if self.state != State.PLAYING or self.session is None:
            return
        if not self.config.only_backchannel and now >= self._last_media + self.config.stall_timeout:
            silence = f"no media from the camera for {self.config.stall_timeout:g} s"
            if self.datagrams_dropped:
                silence += (f" ({self.datagrams_dropped} datagrams from elsewhere than its address and "
                            f"server_port dropped; udp_any_port takes any port)")
            if not self._media_seen and self._fall_back(f"PLAY succeeded but {silence}"):
                return
            self._fail("PLAY", silence + ("" if self._media_seen else self._history()))
            return
        if now >= self._last_keepalive + self.session.timeout / 2:
            self._last_keepalive = now
            method = "GET_PARAMETER" if "GET_PARAMETER" in self.public_methods else "OPTIONS"
            self._request(method, self._aggregate_url(), self._on_keepalive)

    # Requests and responses ----------------------------------------------------------------------

    def _request(self, method: str, url: str, on_response: Callable[[RtspResponse, float], None],
                 headers: dict[str, str] | None = None, *, authorized: bool = False,
                 on_timeout: Callable[[], None] | None = None) -> None:
        self._cseq += 1
        h = Headers([("CSeq", str(self._cseq)), ("User-Agent", self.config.user_agent)])
        for key, value in (headers or {}).items():
            h.add(key, value)
        if self.session is not None and method != "DESCRIBE":
            h.add("Session", self.session.id)
        if self._auth is not None:
            h.add("Authorization", self._auth.authorization(method, url))
            authorized = True
        request = RtspRequest(method, url, h)
        self._pending[self._cseq] = _Pending(request, on_response, self._now, authorized, on_timeout)
        wire = request.serialize()
        self._out += wire
        self._events.append(Exchanged(True, _exchanged_text(wire), self._now))

    def _retry(self, pending: _Pending) -> None:
        original = pending.request
        extra = {k: v for k, v in original.headers
                 if k.lower() not in ("cseq", "user-agent", "session", "authorization")}
        self._request(original.method, original.uri, pending.on_response, extra, on_timeout=pending.on_timeout)

    def _on_response(self, response: RtspResponse, now: float) -> None:
        cseq = response.cseq
        pending = self._pending.pop(cseq, None) if cseq is not None else None
        if pending is None:
            if cseq is None and self._pending:  # some cameras omit CSeq: take the oldest request
                pending = self._pending.pop(min(self._pending))
            else:
                return
        if response.status == 401 and self.state != State.TEARDOWN:
            self._on_unauthorized(pending, response)
            return
        pending.on_response(response, now)

    def _on_unauthorized(self, pending: _Pending, response: RtspResponse) -> None:
        challenges = parse_challenges(response.headers.get_all("WWW-Authenticate"))
        step = pending.request.method
        offered = ", ".join(c.describe() for c in challenges) or "no usable challenge"
        challenge = best_challenge(challenges if self.config.basic_auth
                                   else [c for c in challenges if c.scheme != "basic"])
        if self.credentials is None and best_challenge(challenges) is not None:
            self._fail(step, f"camera requires authentication ({offered}) and no credentials were given",
                       401)
            return
        if challenge is None and best_challenge(challenges) is not None:
            self._fail(step, f"camera offers only Basic authentication ({offered}), which sends the password "
                             f"in clear text; set basic_auth for this camera if the link to it is trusted", 401)
            return
        if challenge is None or self.credentials is None:
            self._fail(step, f"camera requires authentication we cannot answer ({offered})", 401)
            return
        stale = challenge.params.get("stale", "").lower() == "true"
        if pending.authorized and not stale:
            self._fail(step, f"camera rejected the credentials for user {self.credentials.username!r} "
                             f"({challenge.describe()})", 401)
            return
        self._auth = Authenticator(self.credentials.username, self.credentials.password, challenge)
        self._retry(pending)

    def _on_server_request(self, request: RtspRequest) -> None:
        h = Headers()
        if request.cseq is not None:
            h.add("CSeq", str(request.cseq))
        known = request.method in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER", "ANNOUNCE")
        response = RtspResponse(200 if known else 501, "OK" if known else "Not Implemented", h)
        self._out += response.serialize()

    def _redirect_target(self, response: RtspResponse) -> str | None:
        if response.status in (301, 302, 303, 305, 307):
            return response.headers.get("Location")
        return None

    def _on_options(self, response: RtspResponse, now: float) -> None:
        if (location := self._redirect_target(response)) is not None:
            self._redirect(location)
            return
        if response.status == 200:
            public = response.headers.get("Public", "") or ""
            self.public_methods = {m.strip().upper() for m in public.split(",") if m.strip()}
        self._describe()

    def _describe(self) -> None:
        self.state = State.DESCRIBE
        headers = {"Accept": "application/sdp"}
        if self.backchannel_wanted:
            headers["Require"] = BACKCHANNEL_REQUIRE
        self._request("DESCRIBE", self.url, self._on_describe, headers)

    def _on_describe(self, response: RtspResponse, now: float) -> None:
        if (location := self._redirect_target(response)) is not None:
            self._redirect(location)
            return
        if response.status != 200:
            if self.backchannel_wanted:
                self._without_backchannel(f"DESCRIBE with the backchannel answered {response.status} "
                                          f"{response.reason}")
                return
            self._fail("DESCRIBE", f"camera answered {response.status} {response.reason}", response.status)
            return
        sections = response.body.count(b"\nm=") + response.body.startswith(b"m=")  # counted before parsing them
        if sections > MAX_MEDIA_SECTIONS:
            self._fail("DESCRIBE", f"camera's session description has {sections} media sections "
                                   f"(more than {MAX_MEDIA_SECTIONS}: broken or hostile)")
            return
        try:
            sdp = SessionDescription.parse(response.body)
        except SdpParseError as exc:
            self._fail("DESCRIBE", f"camera's session description is malformed: {exc}")
            return
        self.sdp = sdp
        self.base_url = (response.headers.get("Content-Base") or response.headers.get("Content-Location")
                         or self.url)
        self.tracks = self._choose_tracks(sdp)
        live = [t for t in self.tracks if not t.backchannel]
        if self.config.only_backchannel:
            if not any(t.backchannel for t in self.tracks):
                self._fail("DESCRIBE", "the camera offers no audio backchannel (no sendonly audio section)")
                return
            self.tracks = [t for t in self.tracks if t.backchannel]
            for i, track in enumerate(self.tracks):
                track.index = i
        elif not live:
            offered = "; ".join(f"{s.media.kind} {_codec(s.media)}: {s.reason}" for s in self.skipped) or "nothing"
            self._fail("DESCRIBE", f"no media we can receive (camera offers {offered})")
            return
        if self.backchannel_wanted and not any(t.backchannel for t in self.tracks):
            self.backchannel_wanted = False
            self._events.append(BackchannelUnavailable("the camera's description has no sendonly "
                                                       "audio section we can send"))
        self._events.append(Described(sdp, self.base_url, list(self.tracks)))
        if self.config.describe_only:
            self._close()  # no session was made: nothing to tear down
            return
        self._begin_setup()

    def _begin_setup(self) -> None:
        """Set every track up over the current transport (UDP first asks for ports)."""
        self._setup_index = 0
        if self.transport == "udp":
            self.state = State.AWAIT_PORTS
            self._events.append(UdpPortsRequired(list(self.tracks)))
        else:
            self.state = State.SETUP
            self._setup_next()

    def _choose_tracks(self, sdp: SessionDescription) -> list[Track]:
        """The sections to set up; the others go to `skipped` with the reason."""
        tracks: list[Track] = []
        self.skipped = []
        have_backchannel = False
        for position, media in enumerate(sdp.media):
            direction = sdp.media_direction(media)
            backchannel = direction == "sendonly"
            fmt, reason = (self._backchannel_format(media, have_backchannel) if backchannel
                           else self._live_format(media, direction))
            if fmt is not None and len(tracks) == MAX_TRACKS:
                fmt, reason = None, f"not set up: more than {MAX_TRACKS} tracks"
            if fmt is None:
                self.skipped.append(SkippedMedia(position, media, direction, reason))
                continue
            url = resolve_control(self.base_url, media.control)
            tracks.append(Track(len(tracks), media, fmt, url, backchannel=backchannel, direction=direction))
            have_backchannel = have_backchannel or backchannel
        return tracks

    def _backchannel_format(self, media: MediaDescription, have_backchannel: bool) -> tuple[RtpFormat | None, str]:
        """What we would send on a sendonly section, or None and why not."""
        if media.kind != "audio":
            return None, "not received (sendonly)"
        if not self.backchannel_wanted:
            return None, "backchannel, not requested"
        if have_backchannel:
            return None, "another backchannel is used"
        fmt = next((f for name in BACKCHANNEL_FORMATS for f in media.formats if f.encoding == name), None)
        return fmt, f"backchannel with no format we send ({_codec(media)})"

    def _live_format(self, media: MediaDescription, direction: str) -> tuple[RtpFormat | None, str]:
        """The format we receive a section in, or None and why not."""
        if direction == "inactive":
            return None, "inactive"
        if media.kind not in ("video", "audio"):
            return None, f"unsupported media {media.kind}"
        fmt = next((f for f in media.formats if is_supported(f)), None)
        if fmt is None:
            return None, f"unsupported codec {media.formats[0].encoding}" if media.formats else "no format described"
        if self.config.only_backchannel:
            return None, "not requested (backchannel only)"
        return fmt, ""

    def _setup_next(self) -> None:
        if self._setup_index >= len(self.tracks):
            self._play()
            return
        track = self.tracks[self._setup_index]
        if self.transport == "udp":
            assert track.client_ports is not None
            transport = Transport("RTP/AVP", client_port=track.client_ports)
        else:
            transport = Transport("RTP/AVP/TCP", interleaved=(2 * track.index, 2 * track.index + 1))
        headers = {"Transport": str(transport)}
        if self.backchannel_wanted:
            headers["Require"] = BACKCHANNEL_REQUIRE
        self._request("SETUP", track.url, self._on_setup, headers)

    def _on_setup(self, response: RtspResponse, now: float) -> None:
        track = self.tracks[self._setup_index]
        self._switched_here = False
        if response.status != 200:
            answer = f"SETUP of {track.describe()} answered {response.status} {response.reason}"
            # 551 is the backchannel's; another refusal of the backchannel drops it, unless it is
            # all we want or a 461 says the transport is at fault: then another transport may do
            backchannel_refused = response.status == 551 or (
                track.backchannel and response.status != 461 and not self.config.only_backchannel)
            if self.backchannel_wanted and backchannel_refused:
                self._without_backchannel(answer)
                return
            if self._fall_back(answer):
                return
            if self.backchannel_wanted:
                self._without_backchannel(answer)
                return
            self._fail("SETUP", f"{track.describe()} at {track.url}: camera answered {response.status} "
                                f"{response.reason}{self._history()}", response.status)
            return
        try:
            if self.session is None:
                self.session = SessionHeader.parse(response.headers.get("Session") or "")
            transport = Transport.parse(response.headers.get("Transport") or "")
        except RtspParseError as exc:
            if not self._fall_back(f"SETUP of {track.describe()}: {exc}"):
                self._fail("SETUP", f"{track.describe()}: {exc}{self._history()}")
            return
        if self.transport == "udp" and transport.server_port is None and not track.backchannel:
            problem = "camera's UDP transport has no server_port"
            if not self._fall_back(f"SETUP of {track.describe()}: {problem}"):
                self._fail("SETUP", f"{track.describe()}: {problem}{self._history()}")
            return
        track.transport = transport
        track.ssrc = transport.ssrc
        if self.transport == "tcp":
            channels = transport.interleaved or (2 * track.index, 2 * track.index + 1)
            track.channels = channels
            self._channel_map[channels[0]] = (track.index, False)
            self._channel_map[channels[1]] = (track.index, True)
        else:
            track.server_ports = transport.server_port
        self._setup_index += 1
        self._setup_next()

    def _aggregate_url(self) -> str:
        control = self.sdp.control if self.sdp is not None else None
        return resolve_control(self.base_url, control)

    def _play(self) -> None:
        self.state = State.PLAY
        headers: dict[str, str] = {}  # no Range: a live stream has nothing to seek, and seeking a
        if self.backchannel_wanted:  # media with a backchannel fails on some servers (GStreamer)
            headers["Require"] = BACKCHANNEL_REQUIRE
        self._request("PLAY", self._aggregate_url(), self._on_play, headers)

    def _on_play(self, response: RtspResponse, now: float) -> None:
        if response.status != 200:
            if self.backchannel_wanted:
                self._without_backchannel(f"PLAY answered {response.status} {response.reason}")
                return
            self._fail("PLAY", f"camera answered {response.status} {response.reason}", response.status)
            return
        infos = parse_rtp_info(response.headers.get("RTP-Info") or "")
        for i, info in enumerate(infos):
            track = self._track_for_url(info.url, i)
            if track is not None:
                track.rtp_info = info
        range_value = response.headers.get("Range")
        self.play_range = parse_range(range_value) if range_value else None
        self.state = State.PLAYING
        self._last_keepalive = now
        self._last_media = now
        self._play_time = now
        self._media_seen = False
        assert self.session is not None
        self._events.append(Playing(list(self.tracks), self.play_range, self.session.timeout, self.transport))

    def _track_for_url(self, url: str, position: int) -> Track | None:
        for track in self.tracks:
            if track.url == url:
                return track
        for track in self.tracks:  # cameras often answer relative or differently prefixed URLs
            tail = track.media.control or ""
            if tail and tail != "*" and (url.endswith("/" + tail) or url == tail or track.url.endswith(url)):
                return track
        live = [t for t in self.tracks if not t.backchannel]
        return live[position] if position < len(live) else None

    def _on_keepalive(self, response: RtspResponse, now: float) -> None:
        if response.status == 454:
            self._fail("keepalive", "camera lost our session (454 Session Not Found)", 454)

    def _without_backchannel(self, reason: str) -> None:
        """Give up on the backchannel and start over with only the live tracks."""
        if self.config.only_backchannel:
            self._fail("backchannel", f"the camera refused its backchannel: {reason}")
            return
        if self.session is not None:
            self._request("TEARDOWN", self._aggregate_url(), lambda r, n: None)
        self.session = None
        self.tracks = []
        self._channel_map.clear()
        self.backchannel_wanted = False
        self._events.append(BackchannelUnavailable(reason))
        self._describe()

    def _fall_back(self, reason: str, *, reconnect: bool = False) -> bool:
        """Start over with the next transport (on a new connection with `reconnect`); False when
        none is left."""
        if not self._remaining:
            return False
        failed, self._previous = self.transport, self.transport
        self.fallbacks.append(f"{failed.upper()}: {reason}")
        if reconnect:
            self._reconnect(tuple(self._remaining), failed, reason)
            return True
        self.transport = self._remaining.pop(0)
        self._switched_here = True
        self._events.append(TransportFallback(failed, self.transport, reason))
        self._pending.clear()
        self._channel_map.clear()
        for track in self.tracks:
            track.reset_setup()
        self.state = State.SETUP
        if self.session is None:
            self._begin_setup()
            return True
        # tear the half-made session down first; an answer, any answer, or none lets us go on
        self._request("TEARDOWN", self._aggregate_url(), lambda r, n: self._begin_setup(),
                      on_timeout=self._begin_setup)
        self.session = None
        return True

    def _reconnect(self, order: tuple[str, ...], failed: str, reason: str) -> None:
        self._successor_order = order
        self._events.append(TransportFallback(failed, order[0], reason, reconnect=True))
        self._close()

    def _history(self) -> str:
        """The transports given up before, for an error message."""
        return f" (after {'; '.join(self.fallbacks)})" if self.fallbacks else ""

    def _redirect(self, location: str) -> None:
        self._events.append(Redirected(location))
        self._close()

    def _send_media(self, index: int, rtcp: bool, data: bytes) -> None:
        if self.state not in (State.PLAYING, State.PLAY):
            return
        track = self.tracks[index]
        if track.channels is not None:
            self._out += interleaved(track.channels[1 if rtcp else 0], data)
        else:
            self._datagrams.append((index, rtcp, data))

    def _fail(self, step: str, message: str, status: int | None = None) -> None:
        self._events.append(Failed(RtspError(step, message, status)))
        self._close()

    def _close(self) -> None:
        if self.state != State.CLOSED:
            self.state = State.CLOSED
            self._pending.clear()
            self._events.append(Closed())


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A literal address (IPv4-mapped IPv6 as IPv4, zone dropped), else None."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _same_host(a: str, b: str) -> bool:
    ip_a, ip_b = _ip(a), _ip(b)
    return ip_a == ip_b if ip_a is not None and ip_b is not None else a.lower() == b.lower()


def _codec(media: MediaDescription) -> str:
    fmt = media.format
    if fmt is None:
        return "?"
    return f"{fmt.encoding}/{fmt.clock_rate}" + (f"/{fmt.channels}" if fmt.channels != 1 else "")


__all__ = [
    "BACKCHANNEL_REQUIRE",
    "NO_PACKETS_AFTER",
    "BackchannelUnavailable",
    "ClientConfig",
    "Closed",
    "Described",
    "Event",
    "Failed",
    "MediaState",
    "Playing",
    "Redirected",
    "RtcpReceived",
    "RtpReceived",
    "RtspClientConnection",
    "SkippedMedia",
    "State",
    "Track",
    "TransportChoice",
    "TransportFallback",
    "UdpPortsRequired",
    "redact_url",
    "transport_order",
]


MAX_EXCHANGED_BYTES = 16 << 10  # an RTSP message worth keeping: headers and an SDP of a few dozen media


def _exchanged_text(wire: bytes) -> str:
    """A control message as text, `Authorization` values masked (Basic carries the password itself)."""
    text = wire[:MAX_EXCHANGED_BYTES].decode("utf-8", "replace")
    return "\r\n".join(f"{line.partition(':')[0]}: REDACTED" if line.lower().startswith("authorization:") else line
                        for line in text.split("\r\n"))
