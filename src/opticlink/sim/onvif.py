"""The simulator as an ONVIF device: SOAP 1.2 over HTTP and a WS-Discovery responder, on loopback.

Each simulated camera is one ONVIF device on its own HTTP port, as real cameras are (one address each,
the device service at the well-known `/onvif/device_service`, which clients such as onvif-zeep-async
and the npm `onvif` package assume). The Device service (tds) and Media service (trt) answer what a
VMS needs to import a camera: device information, capabilities, services, clock, scopes, profiles
(main and sub-stream), stream URIs, audio sources and the backchannel's audio output and decoder.

`OnvifDevice` is the sans-IO core (request bytes and the wall clock in, status and response bytes
out); `OnvifServer` owns the sockets. Hostile requests (malformed XML, DTDs and entities, oversized
bodies or headers) get a SOAP Fault and the server goes on. WS-UsernameToken (PasswordDigest) is
required when the camera has a user name; GetSystemDateAndTime and the other pre-authentication
operations of the ONVIF Core specification are answered without it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XmlParseError
from defusedxml.ElementTree import fromstring

from opticlink import __version__

if TYPE_CHECKING:
    from opticlink.sim.spec import CameraSpec


class Simulator(Protocol):
    """What the ONVIF service needs of the simulator: where it serves RTSP, and its cameras."""

    host: str
    port: int
    cameras: Mapping[str, CameraSpec]

log = logging.getLogger(__name__)

ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TT = "http://www.onvif.org/ver10/schema"
TER = "http://www.onvif.org/ver10/error"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
DN = "http://www.onvif.org/ver10/network/wsdl"
WSD_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
PROBE_MATCHES_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
MAX_BODY_BYTES = 64 * 1024  # a SOAP request body; larger ones get a fault (real requests are < 4 KiB)
MAX_DRAIN_BYTES = 4 * 1024 * 1024  # an oversized body up to this is read and dropped, to answer it; past it: close
MAX_HEADER_BYTES = 16 * 1024  # the request line and headers together
MAX_HEADER_LINES = 100
MAX_REQUESTS_PER_CONNECTION = 1000  # keep-alive requests on one connection, then it is closed
REQUEST_TIMEOUT_S = 10.0  # to receive one whole request
MAX_DATAGRAM_BYTES = 8 * 1024  # a WS-Discovery Probe; larger datagrams are ignored
MAX_SEEN_NONCES = 4096  # UsernameToken nonces remembered against replay
CREATED_WINDOW_S = 300.0  # a UsernameToken's Created must be this close to the device's clock
DEFAULT_DISCOVERY_PORT = 3702

# Core spec, access class PRE_AUTH: answered without credentials
PRE_AUTH = frozenset({(TDS, "GetSystemDateAndTime"), (TDS, "GetServices"), (TDS, "GetCapabilities"),
                      (TDS, "GetServiceCapabilities"), (TDS, "GetWsdlUrl"), (TDS, "GetEndpointReference"),
                      (TDS, "GetHostname")})


class SoapFault(Exception):
    """A request the device refuses: a SOAP 1.2 Fault with an ONVIF subcode."""

    def __init__(self, subcode: str, reason: str, *, sender: bool = True, status: int | None = None) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.sender = sender
        self.status = status or (400 if sender else 500)

    def envelope(self) -> bytes:
        code = "env:Sender" if self.sender else "env:Receiver"
        return _envelope(f'<env:Fault><env:Code><env:Value>{code}</env:Value><env:Subcode><env:Value>{self.subcode}'
                         f'</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">'
                         f'{escape(self.reason)}</env:Text></env:Reason></env:Fault>')


def _envelope(body: str, header: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{ENV}" xmlns:tds="{TDS}" '
            f'xmlns:trt="{TRT}" xmlns:tt="{TT}" xmlns:ter="{TER}">'
            f'{f"<env:Header>{header}</env:Header>" if header else ""}<env:Body>{body}</env:Body></env:Envelope>'
            ).encode()


def parse_xml(data: bytes, limit: int = MAX_BODY_BYTES) -> Element:
    """Parse untrusted XML: bounded size, no DTD (so no entities, no entity bombs), no external references."""
    if len(data) > limit:
        raise SoapFault("ter:InvalidArgVal", f"the request is larger than {limit} bytes")
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SoapFault("ter:InvalidArgVal", f"refused: {type(exc).__name__} (DTDs and entities are not accepted)"
                        ) from None
    except (XmlParseError, ValueError, LookupError, RecursionError) as exc:  # LookupError: an unknown encoding
        raise SoapFault("ter:InvalidArgVal", f"malformed XML: {exc}") from None


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _text(parent: Element | None, ns: str, name: str) -> str | None:
    if parent is None:
        return None
    child = parent.find(f"{{{ns}}}{name}")
    return None if child is None else (child.text or "").strip()


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security UsernameToken PasswordDigest: Base64(SHA-1(nonce + created + password))."""
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


@dataclass(slots=True)
class StreamInfo:
    """One media profile's stream: what GetProfiles describes and GetStreamUri returns."""

    token: str
    name: str
    path: str  # the RTSP path: camN or camN/sub
    width: int
    height: int
    fps: float
    codec: str  # h264, h265


@dataclass(slots=True)
class OnvifDevice:
    """One simulated camera's ONVIF device (sans-IO): `handle` turns a request into a response."""

    spec: CameraSpec
    host: str  # the address in XAddrs and stream URIs
    http_port: int
    rtsp_port: int
    clock_offset_s: float = 0.0  # the device's clock runs this far from the host's
    endpoint: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    _nonces: deque[bytes] = field(default_factory=lambda: deque(maxlen=MAX_SEEN_NONCES))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def xaddr(self) -> str:
        return f"http://{self.host}:{self.http_port}{DEVICE_PATH}"

    @property
    def media_xaddr(self) -> str:
        return f"http://{self.host}:{self.http_port}{MEDIA_PATH}"

    def scopes(self) -> list[str]:
        base = "onvif://www.onvif.org/"
        scopes = [f"{base}type/video_encoder", f"{base}Profile/Streaming", f"{base}hardware/OpticLink-Sim",
                  f"{base}name/{quote(self.name)}", f"{base}location/loopback"]
        if self.spec.audio is not None:
            scopes.insert(1, f"{base}type/audio_encoder")
        return scopes

    def streams(self) -> list[StreamInfo]:
        out = []
        for token, spec, path in (("profile_main", self.spec, self.name),
                                  ("profile_sub", self.spec.substream, f"{self.name}/sub")):
            if spec is None:
                continue
            video = spec.video
            width, height = (video.width, video.height) if video is not None else (0, 0)
            fps = float(video.fps) if video is not None else 0.0
            out.append(StreamInfo(token, "MainStream" if token == "profile_main" else "SubStream", path, width,
                                  height, fps, video.codec if video is not None else "h264"))
        return out

    # -- the request path

    def handle(self, path: str, body: bytes, now: float) -> tuple[int, bytes]:
        """Answer one SOAP request received at wall time `now`: (HTTP status, envelope). Operations are told
        apart by their element's namespace, not by `path` (both services answer at either path, as on many
        cameras)."""
        try:
            return 200, self._dispatch(path, body, now)
        except SoapFault as fault:
            return fault.status, fault.envelope()
        except Exception:  # a simulator bug answers as a camera would, and the server goes on
            log.exception("sim %s: ONVIF request failed", self.name)
            return 500, SoapFault("ter:Action", "internal error", sender=False).envelope()

    def _dispatch(self, path: str, body: bytes, now: float) -> bytes:
        root = parse_xml(body)
        if root.tag != f"{{{ENV}}}Envelope":
            raise SoapFault("ter:InvalidArgVal", "not a SOAP 1.2 envelope")
        soap_body = root.find(f"{{{ENV}}}Body")
        if soap_body is None or len(soap_body) == 0:
            raise SoapFault("ter:InvalidArgVal", "the envelope has no body")
        request = soap_body[0]
        ns, operation = _split(request.tag)
        if (ns, operation) not in PRE_AUTH:
            self._authenticate(root.find(f"{{{ENV}}}Header"), now)
        handlers: dict[tuple[str, str], Callable[[Element, float], str]] = {
            (TDS, "GetDeviceInformation"): self._device_information,
            (TDS, "GetCapabilities"): self._capabilities,
            (TDS, "GetServices"): self._services,
            (TDS, "GetSystemDateAndTime"): self._date_and_time,
            (TDS, "GetScopes"): self._scopes,
            (TRT, "GetProfiles"): self._profiles,
            (TRT, "GetProfile"): self._profile,
            (TRT, "GetStreamUri"): self._stream_uri,
            (TRT, "GetVideoSources"): self._video_sources,
            (TRT, "GetAudioSources"): self._audio_sources,
            (TRT, "GetAudioOutputs"): self._audio_outputs,
            (TRT, "GetAudioOutputConfigurations"): self._audio_output_configurations,
            (TRT, "GetAudioDecoderConfigurations"): self._audio_decoder_configurations,
            (TRT, "GetAudioDecoderConfigurationOptions"): self._audio_decoder_options,
        }
        handler = handlers.get((ns, operation))
        if handler is None:
            raise SoapFault("ter:ActionNotSupported", f"{operation} is not supported by this device", sender=False)
        return _envelope(handler(request, now))

    def _authenticate(self, header: Element | None, now: float) -> None:
        username, password = self.spec.username, self.spec.password
        if username is None:
            return
        refused = SoapFault("ter:NotAuthorized", "Sender not Authorized")
        security = header.find(f"{{{WSSE}}}Security") if header is not None else None
        token = security.find(f"{{{WSSE}}}UsernameToken") if security is not None else None
        if token is None:
            raise refused
        given_user = _text(token, WSSE, "Username")
        password_element = token.find(f"{{{WSSE}}}Password")
        nonce_text, created = _text(token, WSSE, "Nonce"), _text(token, WSU, "Created")
        if (given_user is None or password_element is None or nonce_text is None or created is None
                or password_element.get("Type", PASSWORD_DIGEST) != PASSWORD_DIGEST):
            raise refused  # PasswordDigest only: the password never crosses the link in clear text
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            stamp = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            raise refused from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        if abs((stamp - _utc(now + self.clock_offset_s)).total_seconds()) > CREATED_WINDOW_S:
            raise refused
        expected = password_digest(nonce, created, password or "")
        if not (hmac.compare_digest(given_user.encode(), username.encode())
                and hmac.compare_digest((password_element.text or "").strip().encode(), expected.encode())):
            raise refused
        if nonce in self._nonces:
            raise refused  # a replayed token
        self._nonces.append(nonce)

    # -- Device service

    def _device_information(self, request: Element, now: float) -> str:
        serial = hashlib.sha1(self.name.encode()).hexdigest()[:12].upper()
        return (f"<tds:GetDeviceInformationResponse><tds:Manufacturer>OpticLink</tds:Manufacturer>"
                f"<tds:Model>Simulated camera</tds:Model><tds:FirmwareVersion>{__version__}</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{serial}</tds:SerialNumber><tds:HardwareId>OpticLink-Sim</tds:HardwareId>"
                f"</tds:GetDeviceInformationResponse>")

    def _capabilities(self, request: Element, now: float) -> str:
        return (f"<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Device><tt:XAddr>{self.xaddr}</tt:XAddr></tt:Device>"
                f"<tt:Media><tt:XAddr>{self.media_xaddr}</tt:XAddr><tt:StreamingCapabilities>"
                f"<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
                f"<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
                f"</tds:Capabilities></tds:GetCapabilitiesResponse>")

    def _services(self, request: Element, now: float) -> str:
        services = "".join(f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr>"
                           f"<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
                           for ns, xaddr in ((TDS, self.xaddr), (TRT, self.media_xaddr)))
        return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"

    def _date_and_time(self, request: Element, now: float) -> str:
        t = _utc(now + self.clock_offset_s)
        return (f"<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                f"<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
                f"<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
                f"<tt:UTCDateTime><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:UTCDateTime>"
                f"</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")

    def _scopes(self, request: Element, now: float) -> str:
        items = "".join(f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{escape(s)}</tt:ScopeItem>"
                        f"</tds:Scopes>" for s in self.scopes())
        return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"

    # -- Media service

    def _profile_xml(self, stream: StreamInfo, element: str) -> str:
        spec = self.spec
        main = self.streams()[0]
        encoding = "H264" if stream.codec == "h264" else "H265"
        multicast = ("<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
                     "</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
                     "</tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout>")
        parts = [f"<{element} token={quoteattr(stream.token)} fixed=\"true\"><tt:Name>{stream.name}</tt:Name>",
                 f'<tt:VideoSourceConfiguration token="vsc"><tt:Name>VideoSource</tt:Name><tt:UseCount>2'
                 f'</tt:UseCount><tt:SourceToken>video</tt:SourceToken><tt:Bounds x="0" y="0" '
                 f'width="{main.width}" height="{main.height}"/></tt:VideoSourceConfiguration>']
        if spec.audio is not None:
            parts.append('<tt:AudioSourceConfiguration token="asc"><tt:Name>AudioSource</tt:Name><tt:UseCount>2'
                         '</tt:UseCount><tt:SourceToken>microphone</tt:SourceToken></tt:AudioSourceConfiguration>')
        parts.append(f'<tt:VideoEncoderConfiguration token="vec_{stream.token}"><tt:Name>{stream.name}</tt:Name>'
                     f'<tt:UseCount>1</tt:UseCount><tt:Encoding>{encoding}</tt:Encoding><tt:Resolution>'
                     f'<tt:Width>{stream.width}</tt:Width><tt:Height>{stream.height}</tt:Height></tt:Resolution>'
                     f'<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>{round(stream.fps)}'
                     f'</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>0'
                     f'</tt:BitrateLimit></tt:RateControl>{multicast}</tt:VideoEncoderConfiguration>')
        if spec.audio is not None:
            codec = {"pcmu": "G711", "pcma": "G711", "aac": "AAC"}.get(spec.audio.codec, "G711")
            parts.append(f'<tt:AudioEncoderConfiguration token="aec"><tt:Name>Audio</tt:Name><tt:UseCount>2'
                         f'</tt:UseCount><tt:Encoding>{codec}</tt:Encoding><tt:Bitrate>64</tt:Bitrate><tt:SampleRate>'
                         f'{spec.audio.sample_rate // 1000}</tt:SampleRate>{multicast}</tt:AudioEncoderConfiguration>')
        if spec.backchannel and stream.token == "profile_main":
            parts.append(f"<tt:Extension>{self._output_configuration('tt:AudioOutputConfiguration')}"
                         f"{self._decoder_configuration('tt:AudioDecoderConfiguration')}</tt:Extension>")
        parts.append(f"</{element}>")
        return "".join(parts)

    def _output_configuration(self, element: str) -> str:
        return (f'<{element} token="aoc"><tt:Name>Speaker</tt:Name><tt:UseCount>1</tt:UseCount>'
                f'<tt:OutputToken>speaker</tt:OutputToken><tt:SendPrimacy>'
                f'http://www.onvif.org/ver20/HalfDuplex/Auto</tt:SendPrimacy><tt:OutputLevel>50</tt:OutputLevel>'
                f'</{element}>')

    def _decoder_configuration(self, element: str) -> str:
        return f'<{element} token="adc"><tt:Name>G711</tt:Name><tt:UseCount>1</tt:UseCount></{element}>'

    def _profiles(self, request: Element, now: float) -> str:
        profiles = "".join(self._profile_xml(s, "trt:Profiles") for s in self.streams())
        return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"

    def _find_stream(self, token: str | None) -> StreamInfo:
        stream = next((s for s in self.streams() if s.token == token), None)
        if stream is None:
            raise SoapFault("ter:InvalidArgVal", "no such profile (ter:NoProfile)")
        return stream

    def _profile(self, request: Element, now: float) -> str:
        stream = self._find_stream(_text(request, TRT, "ProfileToken"))
        return f"<trt:GetProfileResponse>{self._profile_xml(stream, 'trt:Profile')}</trt:GetProfileResponse>"

    def _stream_uri(self, request: Element, now: float) -> str:
        stream = self._find_stream(_text(request, TRT, "ProfileToken"))
        uri = f"rtsp://{self.host}:{self.rtsp_port}/{stream.path}"
        return (f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
                f"<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false"
                f"</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>")

    def _video_sources(self, request: Element, now: float) -> str:
        main = self.streams()[0]
        return (f'<trt:GetVideoSourcesResponse><trt:VideoSources token="video"><tt:Framerate>{main.fps:g}'
                f'</tt:Framerate><tt:Resolution><tt:Width>{main.width}</tt:Width><tt:Height>{main.height}'
                f'</tt:Height></tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>')

    def _audio_sources(self, request: Element, now: float) -> str:
        source = ('<trt:AudioSources token="microphone"><tt:Channels>1</tt:Channels></trt:AudioSources>'
                  if self.spec.audio is not None else "")
        return f"<trt:GetAudioSourcesResponse>{source}</trt:GetAudioSourcesResponse>"

    def _audio_outputs(self, request: Element, now: float) -> str:
        output = '<trt:AudioOutputs token="speaker"/>' if self.spec.backchannel else ""
        return f"<trt:GetAudioOutputsResponse>{output}</trt:GetAudioOutputsResponse>"

    def _audio_output_configurations(self, request: Element, now: float) -> str:
        body = self._output_configuration("trt:Configurations") if self.spec.backchannel else ""
        return f"<trt:GetAudioOutputConfigurationsResponse>{body}</trt:GetAudioOutputConfigurationsResponse>"

    def _audio_decoder_configurations(self, request: Element, now: float) -> str:
        body = self._decoder_configuration("trt:Configurations") if self.spec.backchannel else ""
        return f"<trt:GetAudioDecoderConfigurationsResponse>{body}</trt:GetAudioDecoderConfigurationsResponse>"

    def _audio_decoder_options(self, request: Element, now: float) -> str:
        if not self.spec.backchannel:
            raise SoapFault("ter:ActionNotSupported", "this device has no audio output", sender=False)
        g711 = any(f.encoding in ("PCMU", "PCMA") for f in self.spec.backchannel_formats)
        options = ("<tt:G711DecOptions><tt:Bitrate><tt:Items>64</tt:Items></tt:Bitrate><tt:SampleRateRange>"
                   "<tt:Items>8</tt:Items></tt:SampleRateRange></tt:G711DecOptions>" if g711 else "")
        return (f"<trt:GetAudioDecoderConfigurationOptionsResponse><trt:Options>{options}</trt:Options>"
                f"</trt:GetAudioDecoderConfigurationOptionsResponse>")


# -- WS-Discovery (sans-IO)


def probe_matches(datagram: bytes, devices: list[OnvifDevice]) -> bytes | None:
    """The ProbeMatches answer to a WS-Discovery Probe, or None for anything else (ignored, as the spec says).

    One ProbeMatch per device; a Probe that names Types other than NetworkVideoTransmitter (or Device)
    matches nothing."""
    if len(datagram) > MAX_DATAGRAM_BYTES or not devices:
        return None
    try:
        root = parse_xml(datagram, MAX_DATAGRAM_BYTES)
    except SoapFault:
        return None
    header, body = root.find(f"{{{ENV}}}Header"), root.find(f"{{{ENV}}}Body")
    probe = body.find(f"{{{WSD}}}Probe") if body is not None else None
    if root.tag != f"{{{ENV}}}Envelope" or probe is None:
        return None
    message_id = _text(header, WSA, "MessageID") or ""
    types = (_text(probe, WSD, "Types") or "").split()
    if types and not all(t.rpartition(":")[2] in ("NetworkVideoTransmitter", "Device") for t in types):
        return None
    matches = "".join(
        f"<d:ProbeMatch><wsa:EndpointReference><wsa:Address>{d.endpoint}</wsa:Address></wsa:EndpointReference>"
        f"<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>{escape(' '.join(d.scopes()))}"
        f"</d:Scopes><d:XAddrs>{escape(d.xaddr)}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>"
        f"</d:ProbeMatch>" for d in devices)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{ENV}" xmlns:wsa="{WSA}" '
            f'xmlns:d="{WSD}" xmlns:dn="{DN}" xmlns:tds="{TDS}"><env:Header>'
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID><wsa:RelatesTo>{escape(message_id)}"
            f"</wsa:RelatesTo><wsa:To>{WSD_ANONYMOUS}</wsa:To><wsa:Action>{PROBE_MATCHES_ACTION}</wsa:Action>"
            f"</env:Header><env:Body><d:ProbeMatches>{matches}</d:ProbeMatches></env:Body></env:Envelope>").encode()


# -- asyncio adapters


class _DiscoveryProtocol(asyncio.DatagramProtocol):
    def __init__(self, devices: Callable[[], list[OnvifDevice]]) -> None:
        self.devices = devices
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        answer = probe_matches(data, self.devices())
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)  # unicast, back to the prober


@dataclass(slots=True)
class _HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    length: int


class _HttpError(Exception):
    def __init__(self, status: int, reason: str, *, close: bool = True) -> None:
        super().__init__(reason)
        self.status, self.reason, self.close = status, reason, close


async def _read_request(reader: asyncio.StreamReader) -> _HttpRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _HttpError(400, "incomplete request") from None
        return None
    except asyncio.LimitOverrunError:
        raise _HttpError(431, f"request headers larger than {MAX_HEADER_BYTES} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    if len(lines) > MAX_HEADER_LINES:
        raise _HttpError(431, f"more than {MAX_HEADER_LINES} header lines")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _HttpError(400, "malformed request line")
    headers = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise _HttpError(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _HttpError(411, "chunked bodies are not accepted: send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _HttpError(400, "malformed Content-Length") from None
    if length < 0:
        raise _HttpError(400, "malformed Content-Length")
    return _HttpRequest(parts[0], parts[1].split("?", 1)[0], headers, length)


def _http_response(status: int, body: bytes, *, close: bool) -> bytes:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
               413: "Content Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}
    head = (f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nServer: OpticLink simulated camera\r\n"
            f"Content-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n")
    return head.encode() + body


class OnvifServer:
    """Serves the simulator's cameras as ONVIF devices: one HTTP port each; optionally WS-Discovery.

    `discovery_port`: None for no responder; 0 for an ephemeral port (tests); 3702 is the standard one.
    The responder listens on `host` only (unicast Probes): it never joins the multicast group."""

    def __init__(self, simulator: Simulator, *, host: str | None = None, base_port: int = 0,
                 discovery_port: int | None = None) -> None:
        self.simulator = simulator
        self.host = host or simulator.host
        self.base_port = base_port  # 0: ephemeral ports; else camera i listens on base_port + i
        self.discovery_port = discovery_port
        self.devices: dict[str, OnvifDevice] = {}
        self._servers: list[asyncio.Server] = []
        self._discovery: asyncio.DatagramTransport | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def device(self, name: str) -> OnvifDevice:
        return self.devices[name]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i, spec in enumerate(self.simulator.cameras.values()):
            device = OnvifDevice(spec, self.host, 0, self.simulator.port)
            port = self.base_port + i if self.base_port else 0
            server = await asyncio.start_server(lambda r, w, d=device: self._serve(d, r, w), self.host, port,
                                                limit=MAX_HEADER_BYTES, reuse_address=True)
            device.http_port = server.sockets[0].getsockname()[1]
            self._servers.append(server)
            self.devices[spec.name] = device
        if self.discovery_port is not None:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _DiscoveryProtocol(lambda: list(self.devices.values())),
                local_addr=(self.host, self.discovery_port))
            self._discovery = transport
            self.discovery_port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def _serve(self, device: OnvifDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                close = await asyncio.wait_for(self._one(device, reader, writer), REQUEST_TIMEOUT_S)
                if close:
                    break
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("sim %s: ONVIF connection failed", device.name)
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, device: OnvifDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its answer; True when the connection is to close."""
        try:
            request = await _read_request(reader)
        except _HttpError as exc:
            writer.write(_http_response(exc.status, SoapFault("ter:InvalidArgVal", exc.reason).envelope(),
                                        close=True))
            await writer.drain()
            return True
        if request is None:
            return True
        close = request.headers.get("connection", "").lower() == "close"
        if request.length > MAX_BODY_BYTES:
            fault = SoapFault("ter:InvalidArgVal", f"the request is larger than {MAX_BODY_BYTES} bytes", status=413)
            if request.length <= MAX_DRAIN_BYTES:  # read and drop it, so the client sees the answer
                remaining = request.length
                while remaining:
                    chunk = await reader.read(min(remaining, 65536))
                    if not chunk:
                        return True
                    remaining -= len(chunk)
            writer.write(_http_response(413, fault.envelope(), close=True))
            await writer.drain()
            return True
        body = await reader.readexactly(request.length) if request.length else b""
        if request.method != "POST":
            status, answer = 405, SoapFault("ter:InvalidArgVal", "SOAP requests are POSTed").envelope()
        elif request.path not in (DEVICE_PATH, MEDIA_PATH):
            status, answer = 404, SoapFault("ter:InvalidArgVal", f"no service at {request.path}").envelope()
        else:
            status, answer = device.handle(request.path, body, time.time())
        writer.write(_http_response(status, answer, close=close))
        await writer.drain()
        return close
