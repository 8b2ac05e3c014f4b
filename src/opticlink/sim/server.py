"""The simulator's RTSP server: real sockets on loopback, one path per simulated camera.

A camera with a `substream` serves it at `<name>/sub` (its own model and media, the camera's
credentials and speaker). Each PLAY starts a `CameraModel` on the loop's clock and sends what it emits through a
`NetworkModel` (order-preserving over TCP). The ONVIF backchannel section is described only to
clients that `Require` it; what they send on it is kept by the camera's `BackchannelSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opticlink.dsp.g711 import to_float
from opticlink.errors import RtspParseError
from opticlink.rtsp.auth import DigestVerifier
from opticlink.rtsp.client import BACKCHANNEL_REQUIRE
from opticlink.rtsp.headers import Transport, parse_transports
from opticlink.rtsp.message import Headers, InterleavedFrame, RtspReader, RtspRequest, RtspResponse, interleaved
from opticlink.rtsp.sdp import MediaDescription, SessionDescription
from opticlink.sim.camera import CameraModel, Emission
from opticlink.sim.echo import EchoPath
from opticlink.sim.network import NetworkModel
from opticlink.sim.spec import CameraSpec

if TYPE_CHECKING:
    from opticlink.sim.onvif import OnvifServer

log = logging.getLogger(__name__)

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"


@dataclass(slots=True)
class _SessionTrack:
    control: str
    transport: Transport
    backchannel: bool = False
    udp_rtp: asyncio.DatagramTransport | None = None
    udp_rtcp: asyncio.DatagramTransport | None = None


class SimSession:
    """One client's RTSP session on one camera."""

    def __init__(self, server: SimulatorServer, spec: CameraSpec, connection: _Connection,
                 model: CameraModel) -> None:
        self.server = server
        self.spec = spec
        self.connection = connection
        self.model = model
        self.id = os.urandom(6).hex()
        self.tracks: dict[int, _SessionTrack] = {}
        self.receiver_reports = 0
        self.rtcp_received: list[bytes] = []
        self.last_request = asyncio.get_running_loop().time()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.network: NetworkModel | None = None
        self.play_time: float | None = None

    @property
    def backchannel_track(self) -> int | None:
        return next((i for i, t in self.tracks.items() if t.backchannel), None)

    def play(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.play_time = now
        spec = self.spec
        self.model = CameraModel(spec.video, spec.audio, spec.faults, start=now, wall_start=time.time(),
                                 audio_packet_ms=spec.audio_packet_ms, cname=self.model.cname,
                                 echo=self.server.speaker(spec), parameter_sets=spec.parameter_sets)
        f = self.spec.faults
        tcp = any(t.transport.tcp for t in self.tracks.values())
        self.network = NetworkModel(f.jitter_ms, f.loss_pct, f.reorder_pct, ordered=tcp, seed=f.seed)
        if self.task is None:
            self.task = loop.create_task(self._stream())

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.network is not None and self.play_time is not None
        drop_at = self.play_time + self.spec.faults.drop_at_s if self.spec.faults.drop_at_s is not None else None
        try:
            while not self.closed:
                now = loop.time()
                if drop_at is not None and now >= drop_at:
                    log.info("sim %s: dropping the connection (fault)", self.spec.name)
                    self.connection.abort()
                    return
                if now - self.last_request > self.spec.session_timeout:
                    log.info("sim %s: session %s timed out", self.spec.name, self.id)
                    self.connection.abort()
                    return
                self.network.deliver(self.model.advance(now))
                batch = self.network.arrivals(now)
                if batch:
                    self._send([d.emission for d in batch])
                wake = min(now + 0.005, self.model.next_send())
                upcoming = self.network.next_arrival()
                if upcoming is not None:
                    wake = min(wake, upcoming)
                await asyncio.sleep(max(0.0, wake - loop.time()))
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("sim %s: streaming failed", self.spec.name)

    def _send(self, emissions: list[Emission]) -> None:
        chunks = []
        for emission in emissions:
            track = self.tracks.get(emission.track)
            if track is None:
                continue
            t = track.transport
            if t.interleaved is not None:
                chunks.append(interleaved(t.interleaved[1] if emission.rtcp else t.interleaved[0], emission.data))
            else:
                sock = track.udp_rtcp if emission.rtcp else track.udp_rtp
                if sock is not None and t.client_port is not None:
                    port = t.client_port[1] if emission.rtcp else t.client_port[0]
                    sock.sendto(emission.data, (self.connection.peer_host, port))
        if chunks:
            self.connection.write(b"".join(chunks))

    def on_rtcp(self, data: bytes) -> None:
        self.receiver_reports += 1
        self.rtcp_received.append(data)

    def on_backchannel(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        packet = self.spec.sink.receive(data, now)
        speaker = self.server.speaker(self.spec)
        if speaker is not None and packet is not None and packet.payload_type in (0, 8):
            pcm = to_float(packet.payload, "pcmu" if packet.payload_type == 0 else "pcma")
            speaker.play_packet(pcm, packet.ssrc, packet.timestamp, now)

    def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
        for track in self.tracks.values():
            for sock in (track.udp_rtp, track.udp_rtcp):
                if sock is not None:
                    sock.close()


class _UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.on_datagram(data)


class _Connection(asyncio.Protocol):
    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.reader = RtspReader()
        self.transport: asyncio.Transport | None = None
        self.sessions: dict[str, SimSession] = {}
        self.peer_host = "127.0.0.1"
        self._models: dict[str, CameraModel] = {}
        self._channels: dict[int, tuple[SimSession, int, bool]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_host = peer[0]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        for session in self.sessions.values():
            session.close()
        self.server.connections.discard(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except RtspParseError as exc:
            log.warning("sim: malformed RTSP from %s: %s", self.peer_host, exc)
            self.write(RtspResponse(400, "Bad Request").serialize())
            self.abort()
            return
        for message in messages:
            if isinstance(message, InterleavedFrame):
                target = self._channels.get(message.channel)
                if target is not None:
                    session, track, rtcp = target
                    if rtcp:
                        session.on_rtcp(message.data)
                    elif session.tracks[track].backchannel:
                        session.on_backchannel(message.data)
            elif isinstance(message, RtspRequest):
                asyncio.get_running_loop().create_task(self._handle(message))

    async def _handle(self, request: RtspRequest) -> None:
        try:
            response = await self._respond(request)
        except Exception as exc:  # a simulator bug must not look like a camera answer
            log.exception("sim: failed to handle %s", request.method)
            response = RtspResponse(500, "Internal Server Error")
            response.headers.add("X-Error", type(exc).__name__)
        if request.cseq is not None:
            response.headers["CSeq"] = str(request.cseq)
        response.headers.add("Server", "OpticLink simulated camera")
        self.write(response.serialize())

    def _camera(self, uri: str) -> tuple[CameraSpec | None, str]:
        path = uri.split("://", 1)[-1].partition("/")[2]
        name, _, rest = path.partition("/")
        spec = self.server.cameras.get(name)
        first, _, after = rest.partition("/")
        if spec is not None and spec.substream is not None and first == "sub":
            return spec.substream, after
        return spec, rest

    async def _respond(self, request: RtspRequest) -> RtspResponse:
        method = request.method
        if method == "OPTIONS" and request.uri == "*":
            return _response(200, Public=PUBLIC)
        spec, control = self._camera(request.uri)
        if spec is None:
            return _response(404, "Not Found")
        verifier = self.server.verifiers.get(spec.camera_name)
        if verifier is not None and not verifier.verify(method, request.headers.get("Authorization")):
            response = _response(401, "Unauthorized")
            for challenge in verifier.challenges():
                response.headers.add("WWW-Authenticate", challenge)
            return response
        wants_backchannel = BACKCHANNEL_REQUIRE in (request.headers.get("Require") or "")
        if wants_backchannel and not spec.backchannel:
            return _response(551, "Option not supported", Unsupported=BACKCHANNEL_REQUIRE)
        session = self._session(request)
        if session is not None:
            session.last_request = asyncio.get_running_loop().time()
        if method == "OPTIONS":
            return _response(200, Public=PUBLIC)
        if method == "DESCRIBE":
            return self._describe(spec, wants_backchannel)
        if method == "SETUP":
            return await self._setup(spec, control, request, session, wants_backchannel)
        if method in ("PLAY", "GET_PARAMETER", "SET_PARAMETER", "TEARDOWN"):
            if session is None:
                return _response(454, "Session Not Found")
            response = _response(200, Session=f"{session.id};timeout={spec.session_timeout}")
            if method == "PLAY":
                session.play()
                response.headers.add("Range", "npt=now-")
                response.headers.add("RTP-Info", self._rtp_info(spec, session, request.uri))
            elif method == "TEARDOWN":
                session.close()
                self.sessions.pop(session.id, None)
            return response
        return _response(501, "Not Implemented")

    def _session(self, request: RtspRequest) -> SimSession | None:
        value = request.headers.get("Session")
        if value is None:
            return None
        return self.sessions.get(value.split(";")[0].strip())

    def _describe(self, spec: CameraSpec, backchannel: bool) -> RtspResponse:
        model = spec.model()
        self._models[spec.name] = model
        sdp = SessionDescription(name=f"OpticLink simulated camera {spec.name}", control="*",
                                 attributes=[("range", "npt=now-")])
        for i, track in enumerate(model.tracks):
            sdp.media.append(MediaDescription(track.kind, formats=[track.format], control=f"trackID={i}",
                                              direction="recvonly"))
        if backchannel:
            sdp.media.append(MediaDescription("audio", formats=list(spec.backchannel_formats),
                                              control=f"trackID={len(model.tracks)}", direction="sendonly"))
        host, port = self.server.host, self.server.port
        response = _response(200, **{"Content-Type": "application/sdp",
                                     "Content-Base": f"rtsp://{host}:{port}/{spec.name}/"})
        response.body = sdp.serialize().encode()
        return response

    async def _setup(self, spec: CameraSpec, control: str, request: RtspRequest, session: SimSession | None,
                     backchannel: bool) -> RtspResponse:
        model = session.model if session is not None else self._models.get(spec.name) or spec.model()
        if not control.startswith("trackID="):
            return _response(404, "Not Found")
        try:
            index = int(control.removeprefix("trackID="))
        except ValueError:
            return _response(404, "Not Found")
        is_backchannel = index == len(model.tracks)
        if index > len(model.tracks) or (is_backchannel and not (backchannel and spec.backchannel)):
            return _response(404, "Not Found")
        try:
            offered = parse_transports(request.headers.get("Transport") or "")
        except RtspParseError:
            return _response(400, "Bad Request")
        if not offered:
            return _response(461, "Unsupported Transport")
        wanted = next((t for t in offered if ("tcp" if t.tcp else "udp") in spec.transports), None)
        if wanted is None:
            return _response(461, "Unsupported Transport")
        if session is None:
            session = SimSession(self.server, spec, self, model)
            self.sessions[session.id] = session
            self.server.sessions.append(session)
        ssrc = model.ssrc(index) if not is_backchannel else 0
        if wanted.tcp:
            channels = wanted.interleaved or (2 * index, 2 * index + 1)
            reply = Transport("RTP/AVP/TCP", interleaved=channels, ssrc=ssrc or None)
            self._channels[channels[0]] = (session, index, False)
            self._channels[channels[1]] = (session, index, True)
            track = _SessionTrack(control, reply, is_backchannel)
        else:
            if wanted.client_port is None:
                return _response(461, "Unsupported Transport")
            loop = asyncio.get_running_loop()
            track = _SessionTrack(control, wanted, is_backchannel)
            on_rtp = session.on_backchannel if is_backchannel else (lambda data: None)
            rtp, _ = await loop.create_datagram_endpoint(lambda: _UdpEndpoint(on_rtp), local_addr=(self.server.host, 0))
            rtcp, _ = await loop.create_datagram_endpoint(lambda: _UdpEndpoint(session.on_rtcp),
                                                          local_addr=(self.server.host, 0))
            track.udp_rtp, track.udp_rtcp = rtp, rtcp
            server_ports = (rtp.get_extra_info("sockname")[1], rtcp.get_extra_info("sockname")[1])
            reply = Transport("RTP/AVP", client_port=wanted.client_port, server_port=server_ports,
                              ssrc=ssrc or None)
            track.transport = Transport("RTP/AVP", client_port=wanted.client_port, server_port=server_ports)
        session.tracks[index] = track
        return _response(200, Session=f"{session.id};timeout={spec.session_timeout}", Transport=str(reply))

    def _rtp_info(self, spec: CameraSpec, session: SimSession, uri: str) -> str:
        host, port = self.server.host, self.server.port
        now = asyncio.get_running_loop().time()
        parts = []
        for index, track in enumerate(session.model.tracks):
            if index not in session.tracks:
                continue
            segment = track.segment
            url = f"rtsp://{host}:{port}/{spec.name}/trackID={index}"
            if spec.faults.rtp_info:
                parts.append(f"url={url};seq={track.sequence};rtptime={segment.ts_at(now) & 0xFFFFFFFF}")
            else:
                parts.append(f"url={url};seq={track.sequence}")
        return ",".join(parts)


def _response(status: int, reason: str = "OK", **headers: str) -> RtspResponse:
    return RtspResponse(status, reason, Headers([(k, v) for k, v in headers.items()]))


class SimulatorServer:
    """Serves simulated cameras at rtsp://host:port/<name>."""

    def __init__(self, cameras: list[CameraSpec], host: str = "127.0.0.1", port: int = 8554, *,
                 onvif: bool = False, onvif_port: int = 0, discovery_port: int | None = None) -> None:
        """`onvif`: also serve each camera as an ONVIF device (`sim/onvif.py`), camera i on HTTP port
        `onvif_port` + i (0: ephemeral ports), with a WS-Discovery responder on `discovery_port` (None: none)."""
        self.cameras = {c.name: c for c in cameras}
        self.host = host
        self.port = port
        self.verifiers = {c.name: DigestVerifier(c.username, c.password or "")
                          for c in cameras if c.username is not None}
        self.sessions: list[SimSession] = []
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._speakers: dict[str, EchoPath | None] = {}
        self.onvif: OnvifServer | None = None
        self._onvif_options = (onvif_port, discovery_port) if onvif else None

    def speaker(self, spec: CameraSpec) -> EchoPath | None:
        """The camera's one speaker-to-microphone path, shared by all its sessions (G.711 cameras)."""
        main = self.cameras.get(spec.camera_name, spec)  # a sub-stream's microphone hears the same speaker
        if main.name not in self._speakers:
            echo = None
            if main.echo is not None and main.audio is not None and main.audio.codec in ("pcmu", "pcma"):
                echo = EchoPath(main.audio.sample_rate, delay_ms=main.echo.delay_ms, gain_db=main.echo.gain_db,
                                t60=main.echo.t60)
            self._speakers[main.name] = echo
        if spec is not main and spec.audio is not None and main.audio is not None \
                and spec.audio.sample_rate != main.audio.sample_rate:
            return None
        return self._speakers[main.name]

    def url(self, name: str, *, credentials: bool = False, sub: bool = False) -> str:
        """The camera's URL (`sub`: its sub-stream's; KeyError when it has none)."""
        spec = self.cameras[name]
        if sub and spec.substream is None:
            raise KeyError(f"simulated camera {name} has no sub-stream")
        auth = f"{spec.username}:{spec.password}@" if credentials and spec.username else ""
        return f"rtsp://{auth}{self.host}:{self.port}/{name}{'/sub' if sub else ''}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port,
                                                reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        if self._onvif_options is not None:
            from opticlink.sim.onvif import OnvifServer

            base_port, discovery_port = self._onvif_options
            self.onvif = OnvifServer(self, base_port=base_port, discovery_port=discovery_port)
            await self.onvif.start()

    def onvif_url(self, name: str) -> str:
        """The camera's ONVIF device service (KeyError when ONVIF is off)."""
        if self.onvif is None:
            raise KeyError("the simulator serves no ONVIF devices (start it with onvif=True)")
        return self.onvif.device(name).xaddr

    async def close(self) -> None:
        if self.onvif is not None:
            await self.onvif.close()
            self.onvif = None
        for connection in list(self.connections):
            connection.abort()
        for session in self.sessions:
            session.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def latest_session(self, name: str) -> SimSession | None:
        return next((s for s in reversed(self.sessions) if s.spec.name == name), None)
