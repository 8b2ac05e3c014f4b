"""Import a camera over ONVIF (onvif-zeep-async): its streams, audio, backchannel and clock, as camera config.

From a host, port and credentials: the device information, the media profiles (the highest-resolution
stream becomes `url`, the lowest `substream_url`), whether it has a microphone (audio sources) and a
speaker (audio outputs: `talkback`, and the backchannel's codec), and how far its clock is from ours
(WS-UsernameToken authentication fails past a few seconds on many cameras; a warning past
`CLOCK_WARNING_S`). Credentials stay out of the returned URLs: the config keeps them apart, and no
password is ever logged or put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from opticlink.errors import OpticLinkError

log = logging.getLogger(__name__)

CLOCK_WARNING_S = 2.0  # the camera's clock this far from ours: a warning
IMPORT_TIMEOUT_S = 20.0  # the whole import
MAX_PROFILES = 32  # profiles looked at (GetStreamUri for each)
REFUSED = "the camera refused the user name or password"


class OnvifImportError(OpticLinkError):
    """A camera that could not be imported over ONVIF: why, in words (never with the password)."""


@dataclass(slots=True)
class OnvifProfile:
    """One media profile: its token, name, video size and stream URI (without credentials)."""

    token: str
    name: str
    width: int
    height: int
    encoding: str
    uri: str | None


@dataclass(slots=True)
class OnvifCamera:
    """What an ONVIF camera told us, and the service's camera config made of it (`camera_config`)."""

    host: str
    port: int
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    hardware: str = ""
    profiles: list[OnvifProfile] = field(default_factory=list)
    url: str | None = None  # the highest-resolution profile's stream
    substream_url: str | None = None  # the lowest-resolution one's, when there are two or more
    audio: bool = False  # the camera has a microphone (an audio source)
    talkback: bool = False  # the camera has a speaker (an audio output) for the ONVIF backchannel
    backchannel_codec: str | None = None  # what its audio decoder takes: G711, AAC, G726
    clock_offset_s: float | None = None  # the camera's clock minus ours
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)

    scope_name: str | None = None  # the camera's own name, from its onvif://www.onvif.org/name/ scope

    @property
    def name(self) -> str:
        return self.scope_name or " ".join(p for p in (self.manufacturer, self.model) if p) or self.host

    def camera_config(self, camera_id: str | None = None) -> dict[str, Any]:
        """The fields of the service's `CameraConfig` (api/config.py) for this camera."""
        if self.url is None:
            raise OnvifImportError("the camera gave no stream URI in any media profile")
        config: dict[str, Any] = {"id": camera_id or _camera_id(self), "name": self.name, "url": self.url}
        if self.substream_url is not None:
            config["substream_url"] = self.substream_url
        if self.username is not None:
            config["username"] = self.username
            config["password"] = self.password or ""
        config["talkback"] = self.talkback
        config["live_audio"] = self.audio
        return config


def _camera_id(camera: OnvifCamera) -> str:
    raw = f"{camera.host}-{camera.port}".replace(".", "-").replace(":", "-")
    return "".join(c for c in raw if c.isalnum() or c in "-_")[:64] or "camera"


def strip_credentials(uri: str) -> str:
    """The URI without a user name and password (the config keeps them apart)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scope_value(scopes: list[str], kind: str) -> str | None:
    """The value of the first `onvif://www.onvif.org/KIND/VALUE` scope (URL-decoded), or None."""
    prefix = f"onvif://www.onvif.org/{kind}/".lower()
    for scope in scopes:
        if scope.lower().startswith(prefix) and len(scope) > len(prefix):
            return unquote(scope[len(prefix):]).strip() or None
    return None


def _value(obj: Any, *names: str) -> Any:
    for name in names:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def _camera_clock(answer: Any) -> dt.datetime | None:
    """The camera's UTC time from GetSystemDateAndTime, or None when it gave none."""
    utc = _value(answer, "UTCDateTime")
    date, time_ = _value(utc, "Date"), _value(utc, "Time")
    try:
        return dt.datetime(int(_value(date, "Year")), int(_value(date, "Month")), int(_value(date, "Day")),
                           int(_value(time_, "Hour")), int(_value(time_, "Minute")), int(_value(time_, "Second")),
                           tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def _is_auth_failure(exc: BaseException) -> bool:
    """A refusal of the credentials: ter:NotAuthorized, HTTP 401, or the words cameras use for it."""
    from onvif.exceptions import ONVIFAuthError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ONVIFAuthError) or getattr(exc, "status_code", None) == 401:
            return True
        subcodes = getattr(exc, "subcodes", None) or []
        if any("NotAuthorized" in str(getattr(s, "text", s)) for s in subcodes):
            return True
        text = f"{getattr(exc, 'message', '')} {exc}".lower()
        if "not authorized" in text or "notauthorized" in text or "unauthorized" in text or " 401" in text:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _describe(exc: BaseException, password: str | None) -> str:
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return text


async def import_camera(host: str, port: int = 80, username: str | None = None, password: str | None = None,
                        *, timeout: float = IMPORT_TIMEOUT_S) -> OnvifCamera:
    """Ask the camera at host:port (its ONVIF device service) what it is and what it streams."""
    try:
        return await asyncio.wait_for(_import(host, port, username, password), timeout)
    except OnvifImportError:
        raise
    except TimeoutError:
        raise OnvifImportError(f"the camera at {host}:{port} did not answer within {timeout:g} s") from None
    except Exception as exc:
        if _is_auth_failure(exc):
            raise OnvifImportError(REFUSED) from None
        raise OnvifImportError(f"ONVIF import from {host}:{port} failed: {_describe(exc, password)}") from None


async def _import(host: str, port: int, username: str | None, password: str | None) -> OnvifCamera:
    from onvif import ONVIFCamera

    camera = OnvifCamera(host, port, username=username, password=password)
    # no credentials: an empty UsernameToken, which cameras without authentication ignore (zeep fails on None)
    device = ONVIFCamera(host, port, username or "", password or "", no_cache=True)
    try:
        devicemgmt = await device.create_devicemgmt_service()
        before = dt.datetime.now(dt.UTC)
        clock = _camera_clock(await devicemgmt.authless_GetSystemDateAndTime())
        after = dt.datetime.now(dt.UTC)
        if clock is not None:
            # the camera reports whole seconds: up to 1 s of that is truncation, not offset
            camera.clock_offset_s = (clock - (before + (after - before) / 2)).total_seconds() + 0.5
            if abs(camera.clock_offset_s) > CLOCK_WARNING_S:
                camera.warnings.append(f"the camera's clock is {camera.clock_offset_s:+.0f} s from this server's: "
                                       "set it (NTP); recordings' wall times and authentication depend on it")
        info = await devicemgmt.GetDeviceInformation()
        camera.manufacturer = str(_value(info, "Manufacturer") or "")
        camera.model = str(_value(info, "Model") or "")
        camera.firmware = str(_value(info, "FirmwareVersion") or "")
        camera.serial = str(_value(info, "SerialNumber") or "")
        camera.hardware = str(_value(info, "HardwareId") or "")
        scopes = await _optional(devicemgmt.GetScopes()) or []
        camera.scope_name = scope_value([str(_value(s, "ScopeItem") or "") for s in scopes], "name")
        await device.update_xaddrs()
        media = await device.create_media_service()
        await _read_profiles(camera, media)
        await _read_audio(camera, media)
    finally:
        with contextlib.suppress(Exception):
            await device.close()
    return camera


async def _read_profiles(camera: OnvifCamera, media: Any) -> None:
    profiles = list(await media.GetProfiles() or [])[:MAX_PROFILES]
    for profile in profiles:
        token = str(_value(profile, "token") or "")
        encoder = _value(profile, "VideoEncoderConfiguration")
        if not token or encoder is None:
            continue  # audio- or metadata-only profiles stream no picture
        uri = _value(await media.GetStreamUri({
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": token}), "Uri")
        camera.profiles.append(OnvifProfile(
            token, str(_value(profile, "Name") or token), int(_value(encoder, "Resolution", "Width") or 0),
            int(_value(encoder, "Resolution", "Height") or 0), str(_value(encoder, "Encoding") or ""),
            strip_credentials(str(uri)) if uri else None))
    streams = [p for p in camera.profiles if p.uri]
    if not streams:
        return
    # the largest picture is the main stream (the first profile among equals), the smallest the sub-stream
    main = max(streams, key=lambda p: p.width * p.height)
    sub = min(streams, key=lambda p: p.width * p.height)
    camera.url = main.uri
    if sub.width * sub.height < main.width * main.height and sub.uri != main.uri:
        camera.substream_url = sub.uri


async def _optional(call: Any) -> Any:
    """An optional operation: its answer, or None when the camera does not support it."""
    from zeep.exceptions import Fault

    try:
        return await call
    except Fault as exc:
        if _is_auth_failure(exc):
            raise
        return None


async def _read_audio(camera: OnvifCamera, media: Any) -> None:
    sources = await _optional(media.GetAudioSources())
    camera.audio = bool(sources)
    outputs = await _optional(media.GetAudioOutputs())
    camera.talkback = bool(outputs)
    if not camera.talkback:
        return
    decoders = await _optional(media.GetAudioDecoderConfigurations()) or []
    for decoder in decoders:
        token = _value(decoder, "token")
        options = await _optional(media.GetAudioDecoderConfigurationOptions({"ConfigurationToken": token}))
        for key, codec in (("G711DecOptions", "G711"), ("AACDecOptions", "AAC"), ("G726DecOptions", "G726")):
            if _value(options, key) is not None:
                camera.backchannel_codec = codec
                return
    if decoders:
        camera.backchannel_codec = str(_value(decoders[0], "Name") or "") or None
