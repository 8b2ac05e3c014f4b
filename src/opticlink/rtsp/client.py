"""RTSP client session, sans-IO: OPTIONS, DESCRIBE, SETUP, PLAY, keepalive, TEARDOWN.

`RtspClientConnection` never touches a socket or a clock. Feed it what the camera sent with
`receive_data(data, now)` (and, over UDP, `receive_datagram`), send what `data_to_send()` and
`datagrams_to_send()` return, serve `get_timer()` with `handle_timer(now)`, and read what
happened from `next_event()`. Times are seconds on any monotonic clock.

With `backchannel=True` the ONVIF backchannel is asked for (`Require:
www.onvif.org/ver20/backchannel` on DESCRIBE, SETUP and PLAY) and its `sendonly` audio section is
set up; a camera that refuses (551, or any failure of DESCRIBE, SETUP or PLAY) is asked again
without it, so the live tracks play either way.
"""

from __future__ import annotations

import enum
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


@dataclass(slots=True)
class ClientConfig:
    """How to reach a camera. Defaults are what a camera user expects."""

    url: str
    username: str | None = None  # given apart; else taken from the URL
    password: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"  # RTP interleaved in the RTSP connection, or UDP
    backchannel: bool = False  # ask for the ONVIF audio backchannel
    only_backchannel: bool = False  # set up the backchannel alone (a talk session beside the live one)
    request_timeout: float = 10.0  # seconds to wait for any response
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

    @property
    def kind(self) -> str:
        return self.media.kind

    def describe(self) -> str:
        fmt = self.format
        role = "backchannel" if self.backchannel else "live"
        return f"{self.kind} {fmt.encoding}/{fmt.clock_rate} ({role})"


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
    """PLAY succeeded. `range` carries `clock=` when the camera gave an absolute start."""

    tracks: list[Track]
    range: PlayRange | None
    session_timeout: float


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


Event = (Described | UdpPortsRequired | BackchannelUnavailable | Playing | RtpReceived | RtcpReceived
         | Redirected | Failed | Closed)


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


@dataclass(slots=True)
class Credentials:
    username: str
    password: str


def split_url(url: str) -> tuple[str, Credentials | None]:
    """The URL without its user information, and the credentials it carried."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise ValueError(f"not an RTSP URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"RTSP URL has no host: {url!r}")
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

    def start(self, now: float) -> None:
        """Begin the session (OPTIONS, then DESCRIBE)."""
        self._now = now
        self.state = State.OPTIONS
        self._request("OPTIONS", self.url, self._on_options)

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes received on the RTSP connection."""
        self._now = now
        if self.state == State.CLOSED:
            return
        try:
            messages = self._reader.feed(data)
        except RtspParseError as exc:
            self._fail("stream", f"malformed data from the camera: {exc}")
            return
        for message in messages:
            if isinstance(message, InterleavedFrame):
                target = self._channel_map.get(message.channel)
                if target is None:
                    continue
                index, is_rtcp = target
                self._last_media = now
                if is_rtcp:
                    self._events.append(RtcpReceived(index, message.data, now))
                else:
                    self._events.append(RtpReceived(index, message.data, now))
            elif isinstance(message, RtspResponse):
                self._on_response(message, now)
            else:
                self._on_server_request(message)
            if self.state == State.CLOSED:
                return

    def receive_datagram(self, track: int, rtcp: bool, data: bytes, now: float) -> None:
        """A UDP datagram that arrived on `track`'s RTP (or RTCP) port."""
        if self.state in (State.CLOSED, State.TEARDOWN):
            return
        self._last_media = now
        self._events.append(RtcpReceived(track, data, now) if rtcp else RtpReceived(track, data, now))

    def connection_lost(self, now: float, reason: str = "") -> None:
        """The TCP connection closed or failed."""
        self._now = now
        if self.state == State.CLOSED:
            return
        if self.state == State.TEARDOWN:
            self._close()
            return
        detail = f": {reason}" if reason else ""
        self._fail("connection", f"the camera closed the connection{detail}")

    def provide_udp_ports(self, ports: dict[int, tuple[int, int]]) -> None:
        """Local RTP/RTCP port pairs for each track (answer to `UdpPortsRequired`)."""
        if self.state != State.AWAIT_PORTS:
            return
        for track in self.tracks:
            track.client_ports = ports[track.index]
        self.state = State.SETUP
        self._setup_next()

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
        for pending in list(self._pending.values()):
            if now >= pending.sent + self.config.request_timeout:
                if self.state == State.TEARDOWN:
                    self._close()
                    return
                self._fail(pending.request.method, f"no answer in {self.config.request_timeout:g} s")
                return
        if self.state != State.PLAYING or self.session is None:
            return
        if not self.config.only_backchannel and now >= self._last_media + self.config.stall_timeout:
            self._fail("PLAY", f"no media from the camera for {self.config.stall_timeout:g} s")
            return
        if now >= self._last_keepalive + self.session.timeout / 2:
            self._last_keepalive = now
            method = "GET_PARAMETER" if "GET_PARAMETER" in self.public_methods else "OPTIONS"
            self._request(method, self._aggregate_url(), self._on_keepalive)

    # Requests and responses ----------------------------------------------------------------------

    def _request(self, method: str, url: str, on_response: Callable[[RtspResponse, float], None],
                 headers: dict[str, str] | None = None, *, authorized: bool = False) -> None:
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
        self._pending[self._cseq] = _Pending(request, on_response, self._now, authorized)
        self._out += request.serialize()

    def _retry(self, pending: _Pending) -> None:
        original = pending.request
        extra = {k: v for k, v in original.headers
                 if k.lower() not in ("cseq", "user-agent", "session", "authorization")}
        self._request(original.method, original.uri, pending.on_response, extra)

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
        challenge = best_challenge(challenges)
        step = pending.request.method
        offered = ", ".join(c.describe() for c in challenges) or "no usable challenge"
        if challenge is None:
            self._fail(step, f"camera requires authentication we cannot answer ({offered})", 401)
            return
        if self.credentials is None:
            self._fail(step, f"camera requires authentication ({offered}) and no credentials were given",
                       401)
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
            offered = ", ".join(f"{m.kind} {'/'.join(f.encoding for f in m.formats) or '?'}"
                                for m in sdp.media) or "nothing"
            self._fail("DESCRIBE", f"no media we can receive (camera offers {offered})")
            return
        if self.backchannel_wanted and not any(t.backchannel for t in self.tracks):
            self.backchannel_wanted = False
            self._events.append(BackchannelUnavailable("the camera's description has no sendonly "
                                                       "audio section we can send"))
        self._events.append(Described(sdp, self.base_url, list(self.tracks)))
        self._setup_index = 0
        if self.config.transport == "udp":
            self.state = State.AWAIT_PORTS
            self._events.append(UdpPortsRequired(list(self.tracks)))
        else:
            self.state = State.SETUP
            self._setup_next()

    def _choose_tracks(self, sdp: SessionDescription) -> list[Track]:
        tracks: list[Track] = []
        have_backchannel = False
        for media in sdp.media:
            direction = sdp.media_direction(media)
            url = resolve_control(self.base_url, media.control)
            if direction == "sendonly":
                if not self.backchannel_wanted or have_backchannel or media.kind != "audio":
                    continue
                fmt = next((f for name in BACKCHANNEL_FORMATS for f in media.formats
                            if f.encoding == name), None)
                if fmt is None:
                    continue
                tracks.append(Track(len(tracks), media, fmt, url, backchannel=True))
                have_backchannel = True
            elif direction != "inactive" and media.kind in ("video", "audio"):
                fmt = next((f for f in media.formats if is_supported(f)), None)
                if fmt is not None:
                    tracks.append(Track(len(tracks), media, fmt, url))
        return tracks

    def _setup_next(self) -> None:
        if self._setup_index >= len(self.tracks):
            self._play()
            return
        track = self.tracks[self._setup_index]
        if self.config.transport == "udp":
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
        if response.status != 200:
            if self.backchannel_wanted:
                self._without_backchannel(f"SETUP of {track.describe()} answered {response.status} "
                                          f"{response.reason}")
                return
            self._fail("SETUP", f"{track.describe()} at {track.url}: camera answered {response.status} "
                                f"{response.reason}", response.status)
            return
        try:
            if self.session is None:
                self.session = SessionHeader.parse(response.headers.get("Session") or "")
            transport = Transport.parse(response.headers.get("Transport") or "")
        except RtspParseError as exc:
            self._fail("SETUP", f"{track.describe()}: {exc}")
            return
        track.transport = transport
        track.ssrc = transport.ssrc
        if self.config.transport == "tcp":
            channels = transport.interleaved or (2 * track.index, 2 * track.index + 1)
            track.channels = channels
            self._channel_map[channels[0]] = (track.index, False)
            self._channel_map[channels[1]] = (track.index, True)
        else:
            if transport.server_port is None and not track.backchannel:
                self._fail("SETUP", f"{track.describe()}: camera's UDP transport has no server_port")
                return
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
        assert self.session is not None
        self._events.append(Playing(list(self.tracks), self.play_range, self.session.timeout))

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


__all__ = [
    "BACKCHANNEL_REQUIRE",
    "BackchannelUnavailable",
    "ClientConfig",
    "Closed",
    "Described",
    "Event",
    "Failed",
    "Playing",
    "Redirected",
    "RtcpReceived",
    "RtpReceived",
    "RtspClientConnection",
    "State",
    "Track",
    "UdpPortsRequired",
]
