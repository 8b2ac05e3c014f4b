"""asyncio adapter for `RtspClientConnection`: owns the TCP connection, UDP sockets and timer.

It does nothing protocol-specific: bytes in, bytes out, the loop's clock for `now`, and events
passed on to a callback as they happen (RTP packets included, so the hot path has no queue).
A transport fallback that needs a new connection (`TransportFallback.reconnect`) is followed
like a redirect: the core's `successor()` is driven on a new socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from opticlink.errors import RtspError
from opticlink.rtsp.client import (
    ClientConfig,
    Closed,
    Described,
    Event,
    Failed,
    Playing,
    Redirected,
    RtpReceived,
    RtspClientConnection,
    Track,
    TransportFallback,
    UdpPortsRequired,
    redact_url,
    split_url,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 554


def _origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of a URL (the default port filled in), to compare redirect targets."""
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or DEFAULT_PORT


RECV_BYTES = 256 * 1024  # what one read takes at most (asyncio's own read size)


class _TcpProtocol(asyncio.BufferedProtocol):
    """Reads into one buffer of its own (`recv_into`): a plain `Protocol` costs a new 256 KiB `bytes` per
    read, which for a few kilobytes of RTP is most of the read's cost."""

    def __init__(self, client: RtspClient, connection: RtspClientConnection) -> None:
        self.client = client
        self.connection = connection  # a redirect replaces the client's connection: ignore stale events
        self._buffer = memoryview(bytearray(RECV_BYTES))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.connection is self.client.connection:
            self.client._on_data(self._buffer[:nbytes])  # the connection copies what it keeps

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is self.client.connection:
            self.client._on_connection_lost(exc)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: RtspClient, track: int, rtcp: bool) -> None:
        self.client, self.track, self.rtcp = client, track, rtcp

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.client._on_datagram(self.track, self.rtcp, data, (str(addr[0]), addr[1]))


class RtspClient:
    """Connects to a camera and plays it; events go to `on_event` as they happen.

    `await start()` returns once PLAY succeeded (raising `RtspError` if it did not);
    `await wait_closed()` returns the error that ended the session, or None after `close()`.
    """

    # Redirects followed per attempt: a load balancer and a moved stream are one or two; a loop of
    # them (or a camera sending us around) ends as an error instead of going on for ever.
    MAX_REDIRECTS = 3

    def __init__(self, config: ClientConfig, on_event: Callable[[Event], None] | None = None, *,
                 on_drained: Callable[[], None] | None = None) -> None:
        self.config = config
        self.on_event = on_event or (lambda event: None)
        # called once the events of what was just received have all gone to `on_event`: a consumer does
        # its per-batch work (timers, reports) there rather than per RTP packet
        self.on_drained = on_drained
        self.connection = RtspClientConnection(config)
        self._loop = asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self._udp: dict[tuple[int, bool], asyncio.DatagramTransport] = {}
        self._server_host: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._playing: asyncio.Future[Playing] = self._loop.create_future()
        self._described: asyncio.Future[Described] = self._loop.create_future()
        self._closed: asyncio.Future[RtspError | None] = self._loop.create_future()
        self._redirects = 0
        self._error: RtspError | None = None

    @property
    def tracks(self) -> list[Track]:
        return self.connection.tracks

    @property
    def transport(self) -> str:
        """The lower transport being tried or used: "tcp" or "udp"."""
        return self.connection.transport

    async def start(self) -> Playing:
        """Connect, set up and play; raises `RtspError` with the failing step."""
        await self._connect()
        return await asyncio.shield(self._playing)

    async def describe(self) -> Described:
        """Connect and ask what the camera offers (`ClientConfig.describe_only`: nothing is set up,
        the connection closes after the answer); raises `RtspError` with the failing step."""
        assert self.config.describe_only, "describe() needs ClientConfig(describe_only=True)"
        await self._connect()
        try:
            return await asyncio.shield(self._described)
        finally:
            self._shutdown(self._error)

    async def wait_closed(self) -> RtspError | None:
        return await asyncio.shield(self._closed)

    def send_rtp(self, track: int, data: bytes) -> None:
        self.connection.send_rtp(track, data)
        self._flush()

    def send_rtcp(self, track: int, data: bytes) -> None:
        self.connection.send_rtcp(track, data)
        self._flush()

    async def close(self, timeout: float = 2.0) -> None:
        """TEARDOWN, then close the sockets."""
        if not self._closed.done():
            self.connection.teardown(self._loop.time())
            self._pump()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        self._shutdown(None)

    # Internals -----------------------------------------------------------------------------------

    async def _connect(self) -> None:
        parts = urlsplit(self.connection.url)
        host, port = parts.hostname or "", parts.port or DEFAULT_PORT
        self._server_host = host
        timeout = self.config.connect_timeout
        try:
            connection = self.connection
            transport, _ = await asyncio.wait_for(
                self._loop.create_connection(lambda: _TcpProtocol(self, connection), host, port), timeout)
        except (TimeoutError, OSError) as exc:
            reason = (f"no answer in {timeout:g} s" if isinstance(exc, asyncio.TimeoutError)
                      else exc.strerror or str(exc))
            error = RtspError("connect", f"cannot reach {host}:{port}: {reason}")
            self._shutdown(error)
            raise error from None
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self._server_host = str(peer[0])  # the address media comes from and RTCP goes to
        self.connection.start(self._loop.time(), self._server_host)
        self._pump()

    def _on_data(self, data: bytes | memoryview) -> None:
        self.connection.receive_data(data, self._loop.time())
        self._pump()

    def _on_datagram(self, track: int, rtcp: bool, data: bytes, source: tuple[str, int]) -> None:
        self.connection.receive_datagram(track, rtcp, data, self._loop.time(), source)
        self._pump()

    def _on_connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.connection.connection_lost(self._loop.time(), str(exc) if exc else "")
        self._pump()

    def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
        for track, rtcp, payload in self.connection.datagrams_to_send():
            self._send_datagram(track, rtcp, payload)

    def _pump(self) -> None:
        self._flush()
        connection = self.connection
        on_event = self.on_event
        while (event := connection.next_event()) is not None:
            if event.__class__ is RtpReceived:  # nearly every event: nothing to do here but pass it on
                on_event(event)
                continue
            if isinstance(event, UdpPortsRequired):
                self._loop.create_task(self._bind_udp(event.tracks))
            elif isinstance(event, Playing):
                if not self._playing.done():
                    self._playing.set_result(event)
            elif isinstance(event, Described):
                if not self._described.done():
                    self._described.set_result(event)
            elif isinstance(event, Failed):
                self._error = event.error
                for waiting in (self._playing, self._described):
                    if not waiting.done():
                        waiting.set_exception(event.error)
                        waiting.exception()  # retrieved: start() and describe() re-raise it
            elif isinstance(event, Redirected):
                self._follow_redirect(event.url)
            elif isinstance(event, TransportFallback):
                log.info("RTSP %s: %s failed (%s); trying %s", connection.url, event.failed.upper(), event.reason,
                         event.next.upper())
                self._close_udp()
                if event.reconnect and connection is self.connection:
                    self._replace_connection(connection.successor())
            elif isinstance(event, Closed) and connection is self.connection:
                self._shutdown(self._error)
            on_event(event)
        if self.on_drained is not None:
            self.on_drained()
        self._flush()
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.connection.get_timer()
        timer = self._timer
        if timer is not None:
            # A timer due no later than the deadline is kept: if it fires early, `handle_timer` finds nothing
            # due and it is set again. (The media stall deadline moves with every chunk received: a new
            # timer per chunk cost an allocation, a cancelled heap entry and a heap push each time.)
            if deadline is not None and timer.when() <= deadline and not self._closed.done():
                return
            timer.cancel()
            self._timer = None
        if deadline is not None and not self._closed.done():
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.connection.handle_timer(self._loop.time())
        self._pump()

    def _follow_redirect(self, location: str) -> None:
        self._redirects += 1
        if self._redirects > self.MAX_REDIRECTS:
            self._error = RtspError("redirect", f"more than {self.MAX_REDIRECTS} redirects "
                                                f"(last to {redact_url(location)})")
            return
        try:
            target, creds = split_url(location)
        except ValueError as exc:
            self._error = RtspError("redirect", f"camera redirected to an unusable URL: {exc}")
            return
        _, original_creds = split_url(self.config.url)
        if _origin(target) == _origin(self.connection.url):
            creds = creds or original_creds
            config = dataclasses.replace(self.config, url=target)
            if config.username is None and creds is not None:
                config = dataclasses.replace(config, username=creds.username, password=creds.password)
        else:  # our credentials are for the camera we were given, never for where it sends us
            config = dataclasses.replace(self.config, url=target, username=None, password=None)
            if creds is not None:
                config = dataclasses.replace(config, username=creds.username, password=creds.password)
            log.info("RTSP redirect to another host or port: credentials are not sent there")
        log.info("RTSP redirect from %s to %s", self.connection.url, target)
        self._replace_connection(RtspClientConnection(config))

    def _replace_connection(self, connection: RtspClientConnection) -> None:
        """Drop the control connection and drive `connection` on a new one."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._close_udp()
        self.connection = connection
        self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            await self._connect()
        except RtspError as exc:
            if not self._playing.done():
                self._playing.set_exception(exc)

    async def _bind_udp(self, tracks: list[Track]) -> None:
        connection = self.connection
        host = "0.0.0.0"
        if self._transport is not None:
            host = self._transport.get_extra_info("sockname")[0]
        ports: dict[int, tuple[int, int]] = {}
        bound: dict[tuple[int, bool], asyncio.DatagramTransport] = {}
        try:
            for track in tracks:
                ports[track.index] = await self._bind_pair(track.index, host, bound)
        except OSError as exc:
            for sock in bound.values():
                sock.close()
            self._error = RtspError("SETUP", f"cannot bind UDP ports: {exc}")
            if not self._playing.done():
                self._playing.set_exception(self._error)
            self._shutdown(self._error)
            return
        if connection is not self.connection or self._closed.done():  # replaced or closed meanwhile
            for sock in bound.values():
                sock.close()
            return
        self._udp.update(bound)
        self.connection.provide_udp_ports(ports)
        self._pump()

    async def _bind_pair(self, index: int, host: str,
                         bound: dict[tuple[int, bool], asyncio.DatagramTransport]) -> tuple[int, int]:
        """An even RTP port and the odd port after it, as RFC 3550 asks."""
        for _ in range(20):
            rtp, _ = await self._loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self, index, False), local_addr=(host, 0))
            port = rtp.get_extra_info("sockname")[1]
            if port % 2 == 0:
                try:
                    rtcp, _ = await self._loop.create_datagram_endpoint(
                        lambda: _UdpProtocol(self, index, True), local_addr=(host, port + 1))
                except OSError:
                    rtp.close()
                    continue
                bound[(index, False)] = rtp
                bound[(index, True)] = rtcp
                return port, port + 1
            rtp.close()
        raise OSError("no free even/odd UDP port pair")

    def _close_udp(self) -> None:
        for sock in self._udp.values():
            sock.close()
        self._udp.clear()

    def _send_datagram(self, track: int, rtcp: bool, data: bytes) -> None:
        sock = self._udp.get((track, rtcp))
        ports = self.connection.tracks[track].server_ports if track < len(self.connection.tracks) else None
        if sock is None or ports is None or self._server_host is None:
            return
        sock.sendto(data, (self._server_host, ports[1] if rtcp else ports[0]))

    def _shutdown(self, error: RtspError | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._close_udp()
        if not self._playing.done():
            self._playing.set_exception(error or RtspError("connect", "closed before playing"))
            self._playing.exception()
        if not self._described.done():
            self._described.set_exception(error or RtspError("DESCRIBE", "closed before the camera described it"))
            self._described.exception()
        if not self._closed.done():
            self._closed.set_result(error)
