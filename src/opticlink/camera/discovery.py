"""WS-Discovery of ONVIF cameras: a Probe out, ProbeMatches back, parsed defensively.

`build_probe` and `parse_probe_matches` are the sans-IO core; `discover` owns the socket. In real use
the Probe goes to the WS-Discovery multicast group (239.255.255.250:3702) and every camera on the
link answers by unicast; `address` sends it to one host instead (a unicast Probe, which cameras and
the simulator answer too).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XmlParseError
from defusedxml.ElementTree import fromstring

from opticlink.camera.onvif import scope_value
from opticlink.errors import ParseError

MULTICAST_ADDRESS = ("239.255.255.250", 3702)  # WS-Discovery's IPv4 group and port
MAX_DATAGRAM_BYTES = 64 * 1024  # one ProbeMatches datagram (UDP's own limit)
MAX_MATCHES = 256  # ProbeMatch elements read from one datagram
MAX_DEVICES = 1024  # devices kept from one discovery
MAX_FIELD_CHARS = 4096  # XAddrs or Scopes of one match
DEFAULT_TIMEOUT_S = 3.0

ENV = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
DN = "http://www.onvif.org/ver10/network/wsdl"
PROBE_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe"
WSD_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"


class DiscoveryParseError(ParseError):
    """A datagram that is not a WS-Discovery ProbeMatches message."""


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One ProbeMatch: the device's service addresses, scopes, and the name and hardware its scopes give."""

    endpoint: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    types: tuple[str, ...]
    name: str | None
    hardware: str | None
    relates_to: str | None = None


def build_probe(message_id: str | None = None) -> tuple[str, bytes]:
    """A Probe for NetworkVideoTransmitter devices: (its MessageID, the datagram)."""
    message_id = message_id or f"urn:uuid:{uuid.uuid4()}"
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope xmlns:s="{ENV}" xmlns:a="{WSA}" '
            f'xmlns:d="{WSD}" xmlns:dn="{DN}"><s:Header><a:Action>{PROBE_ACTION}</a:Action>'
            f"<a:MessageID>{message_id}</a:MessageID><a:To>{WSD_TO}</a:To></s:Header>"
            f"<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>")
    return message_id, body.encode()


def _child_text(parent, ns: str, name: str) -> str:
    child = parent.find(f"{{{ns}}}{name}")
    text = (child.text or "") if child is not None else ""
    if len(text) > MAX_FIELD_CHARS:
        raise DiscoveryParseError(f"{name} longer than {MAX_FIELD_CHARS} characters")
    return text.strip()


def parse_probe_matches(data: bytes) -> list[DiscoveredDevice]:
    """The devices in a ProbeMatches datagram; DiscoveryParseError for anything else (never another exception)."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise DiscoveryParseError(f"datagram larger than {MAX_DATAGRAM_BYTES} bytes")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise DiscoveryParseError(f"refused: {type(exc).__name__} (no DTDs or entities in discovery)") from None
    except (XmlParseError, ValueError, LookupError, RecursionError) as exc:
        raise DiscoveryParseError(f"malformed XML: {exc}") from None
    if root.tag != f"{{{ENV}}}Envelope":
        raise DiscoveryParseError("not a SOAP 1.2 envelope")
    header, body = root.find(f"{{{ENV}}}Header"), root.find(f"{{{ENV}}}Body")
    matches = body.find(f"{{{WSD}}}ProbeMatches") if body is not None else None
    if matches is None:
        raise DiscoveryParseError("not a ProbeMatches message")
    relates_to = _child_text(header, WSA, "RelatesTo") or None if header is not None else None
    devices = []
    for match in matches.findall(f"{{{WSD}}}ProbeMatch")[:MAX_MATCHES]:
        reference = match.find(f"{{{WSA}}}EndpointReference")
        endpoint = _child_text(reference, WSA, "Address") if reference is not None else ""
        xaddrs = tuple(x for x in _child_text(match, WSD, "XAddrs").split() if x.lower().startswith("http"))
        scopes = tuple(_child_text(match, WSD, "Scopes").split())
        types = tuple(_child_text(match, WSD, "Types").split())
        if not xaddrs and not endpoint:
            continue  # nothing to reach it by
        devices.append(DiscoveredDevice(endpoint, xaddrs, scopes, types, scope_value(list(scopes), "name"),
                                        scope_value(list(scopes), "hardware"), relates_to))
    return devices


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.devices: dict[tuple[str, tuple[str, ...]], DiscoveredDevice] = {}
        self.errors = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            found = parse_probe_matches(data)
        except DiscoveryParseError:
            self.errors += 1
            return
        for device in found:
            if device.relates_to not in (None, self.message_id) or len(self.devices) >= MAX_DEVICES:
                continue  # an answer to someone else's Probe
            self.devices.setdefault((device.endpoint, device.xaddrs), device)

    def error_received(self, exc: Exception) -> None:
        self.errors += 1


async def discover(address: tuple[str, int] = MULTICAST_ADDRESS, timeout: float = DEFAULT_TIMEOUT_S,
                   *, interface: str = "0.0.0.0") -> list[DiscoveredDevice]:
    """Send one Probe to `address` (default: the multicast group) and collect the ProbeMatches for `timeout` s."""
    loop = asyncio.get_running_loop()
    message_id, probe = build_probe()
    host = address[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        if host == MULTICAST_ADDRESS[0]:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # this link only
            sock.bind((interface, 0))
        else:
            sock.bind(("127.0.0.1" if host.startswith("127.") else ("::" if family == socket.AF_INET6 else ""), 0))
    except OSError:
        sock.close()
        raise
    transport, collector = await loop.create_datagram_endpoint(lambda: _Collector(message_id), sock=sock)
    try:
        transport.sendto(probe, address)
        await asyncio.sleep(timeout)
    finally:
        transport.close()
        with contextlib.suppress(Exception):
            sock.close()
    return list(collector.devices.values())
