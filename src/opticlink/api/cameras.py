"""Camera management over the API (admins only): add, edit, remove, enable and disable cameras while the
service runs, and probe a camera before adding it.

Cameras the YAML declares stay the file's: they are listed with `declared: true` and the API refuses to
change them (409). Cameras added here are kept in the database (`store.cameras`) and come back after a
restart. Each change applies at once to that camera only (`Service.add_camera` and friends) and is
audited. Passwords are write-only: no answer carries one, only `password_set`.
"""

# no `from __future__ import annotations`: FastAPI reads these routes' annotations at runtime

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opticlink.api.config import CameraConfig
from opticlink.api.service import Service, _secrets
from opticlink.auth.redact import install_log_redaction, redact
from opticlink.auth.roles import Principal
from opticlink.camera.oneshot import played
from opticlink.camera.probe import _track_report, _without_secrets
from opticlink.camera.session import CameraSession
from opticlink.errors import RtspError
from opticlink.media import MediaFrame
from opticlink.rtsp.client import ClientConfig, MediaState

log = logging.getLogger(__name__)

DECLARED = "declared in cameras.yaml"  # why a camera cannot be changed through the API
PROBE_SECONDS = 3.0  # media watched once the camera plays
PROBE_TIMEOUT_S = 8.0  # a probe answers within this, whatever the camera does
MAX_PROBES = 2  # probes at once; more get 429
NAMES = {"H264": "H.264", "H265": "H.265", "PCMU": "G.711 µ-law", "PCMA": "G.711 A-law", "MPEG4-GENERIC": "AAC",
         "L16": "L16 (uncompressed)",  # codecs as a camera's settings page names them; those we take, then others
         "MPA": "MPEG audio (MP2/MP3)", "MP4A-LATM": "AAC in LATM", "G722": "G.722", "G726-16": "G.726",
         "G726-24": "G.726", "G726-32": "G.726", "G726-40": "G.726", "OPUS": "Opus", "JPEG": "Motion JPEG",
         "MP4V-ES": "MPEG-4 video", "H263-1998": "H.263"}
MAX_BODY = 16384
MAX_TEXT = 2000  # characters of any one setting  # bytes of a camera's JSON
FIELDS = frozenset(CameraConfig.model_fields)
MESSAGES = {  # pydantic's error types in words an admin reads
    "missing": "required",
    "extra_forbidden": "not a camera setting",
    "string_pattern_mismatch": "letters, digits, _ and - only, 1 to 64 characters (it names the camera "
                               "in addresses and folders)",
}


class ProbeRequest(BaseModel):
    """What to probe: a camera's address and, if it needs them, its credentials."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000)
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=200)
    substream_url: str | None = Field(None, max_length=2000)


def field_errors(exc: ValidationError) -> dict[str, str]:
    """{field: message} for a pydantic error, one message per field (the first)."""
    out: dict[str, str] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "body"
        out.setdefault(field, MESSAGES.get(error["type"], error["msg"]))
    return out


def refused(fields: dict[str, str]) -> JSONResponse:
    """422 with a sentence and {field: message}."""
    detail = "; ".join(f"{field}: {message}" for field, message in fields.items())
    return JSONResponse({"detail": detail, "fields": fields}, 422)


def check_url(value: object) -> str | None:
    """Why `value` is not a camera address, if so."""
    if not isinstance(value, str):
        return "an rtsp:// address"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return "not a valid address (check the port)"
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        return "an rtsp:// address with a host, e.g. rtsp://192.0.2.10:554/stream1"
    if any(c.isspace() for c in value) or len(value) > 2000:
        return "an address without spaces, at most 2000 characters"
    return None


def _split_credentials(data: dict[str, Any]) -> None:
    """Move user information out of the URLs into `username`/`password` (unless given apart), so no
    URL kept or shown carries a password."""
    for key in ("url", "substream_url"):
        url = data.get(key)
        if not isinstance(url, str) or "@" not in url:
            continue
        parts = urlsplit(url)
        if parts.username is None:
            continue
        host = parts.netloc.rpartition("@")[2]
        data[key] = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        if key == "url" and data.get("username") is None:
            data["username"] = unquote(parts.username)
            data["password"] = unquote(parts.password or "")
        elif key == "substream_url":  # its own credentials: kept in its URL as the sub-stream needs them
            user = quote(unquote(parts.username), safe="")
            secret = f":{quote(unquote(parts.password or ''), safe='')}" if parts.password is not None else ""
            data[key] = urlunsplit((parts.scheme, f"{user}{secret}@{host}", parts.path, parts.query,
                                    parts.fragment))


def validate(data: object, *, partial_of: CameraConfig | None = None) -> CameraConfig | dict[str, str]:
    """A camera's configuration from an API body (all of it, or a change of `partial_of`), else
    {field: message}. `enabled` is not part of it (see `enabled_of`)."""
    if not isinstance(data, dict):
        return {"body": "a JSON object of camera settings"}
    data = {k: v for k, v in data.items() if k != "enabled"}
    errors: dict[str, str] = {}
    for key in data:
        if key not in FIELDS:
            errors[str(key)[:64]] = "not a camera setting"
    if partial_of is not None and "id" in data and data["id"] != partial_of.id:
        errors["id"] = "a camera's id does not change: remove the camera and add it again"
    for key, value in data.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            errors[str(key)[:64]] = f"at most {MAX_TEXT} characters"
    for key in ("url", "substream_url"):
        if key in data and key not in errors and not (key == "substream_url" and data[key] in (None, "")):
            problem = check_url(data[key])
            if problem:
                errors[key] = problem
    data = {k: v for k, v in data.items() if k not in errors}
    if data.get("substream_url") == "":
        data["substream_url"] = None
    if data.get("password") == "":
        data["password"] = None
    _split_credentials(data)
    merged = {**partial_of.model_dump(), **data} if partial_of is not None else data
    try:
        config = CameraConfig.model_validate(merged)
    except ValidationError as exc:
        return {**errors, **{k: v for k, v in field_errors(exc).items()
                             if k not in errors and not (k == "url" and "url" in errors)}}
    return errors or config


def enabled_of(data: object, default: bool) -> bool | dict[str, str]:
    value = data.get("enabled", default) if isinstance(data, dict) else default
    return value if isinstance(value, bool) else {"enabled": "true or false"}


def describe(config: CameraConfig, *, enabled: bool, declared: bool) -> dict[str, object]:
    """A camera's configuration as the API shows it: every field but the password, URLs redacted."""
    out = config.model_dump(mode="json", exclude={"password"})
    for key in ("url", "substream_url"):
        if out.get(key):
            out[key] = redact(str(out[key]), _secrets(config))
    out["password_set"] = any(_secrets(config))
    out["enabled"] = enabled
    out["declared"] = declared
    return out


def changes(before: CameraConfig, after: CameraConfig) -> list[str]:
    """What an edit changed, for the audit log (never a password)."""
    out = []
    for name in CameraConfig.model_fields:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if name == "password":
            out.append("password changed")
        elif name in ("url", "substream_url"):
            out.append(f"{name} {redact(str(old), _secrets(before))} -> {redact(str(new), _secrets(after))}")
        else:
            out.append(f"{name} {old} -> {new}")
    return out


# probing -------------------------------------------------------------------------------------------


def _resolution(frame: MediaFrame) -> tuple[int, int] | None:
    """The picture size of a keyframe, decoded once with PyAV (its parameter sets before it)."""
    import av

    config = frame.config
    if config is None or not getattr(config, "parameter_sets", None):
        return None
    start = b"\x00\x00\x00\x01"
    stream = b"".join(start + ps for ps in config.parameter_sets)  # type: ignore[union-attr]
    data, position = frame.data, 0
    while position + 4 <= len(data):  # length-prefixed NAL units to Annex B
        size = int.from_bytes(data[position:position + 4], "big")
        stream += start + data[position + 4:position + 4 + size]
        position += 4 + size
    try:
        codec = av.CodecContext.create("hevc" if frame.codec == "h265" else "h264", "r")
        for packet in codec.parse(stream) or [av.Packet(stream)]:
            for picture in codec.decode(packet):
                return picture.width, picture.height
        for picture in codec.decode(None):
            return picture.width, picture.height
    except Exception:  # a picture we cannot decode: the size stays unknown
        return None
    return None


def _problem_for_error(error: RtspError, url: str) -> str:
    """A failed connection in words a person who is not a network engineer understands."""
    text = str(error)
    if error.step == "connect":
        try:
            parts = urlsplit(url)
            where = f"{parts.hostname}:{parts.port or (322 if parts.scheme == 'rtsps' else 554)}"
        except ValueError:
            where = "the camera"
        return f"no answer from {where}: check the address and that the camera is on and reachable"
    if error.status == 401:
        if "no credentials" in text:
            return "the camera asks for a user name and password: give them"
        if "only Basic" in text:
            return ("the camera only takes passwords sent in clear text: turn on basic_auth if the network "
                    "to it is trusted")
        return "wrong user name or password"
    if error.status == 404:
        return "the camera has no stream at this address: check the path after the host"
    if error.status == 403:
        return "the camera refused this user: check the user's rights in the camera"
    return f"the camera could not be played: {text}"


def _codec_words(codec: str) -> str:
    """A codec as a person reads it: "MPEG audio (MP2/MP3) (MPA)" for `MPA/90000`."""
    raw = codec.split("/")[0]
    name = NAMES.get(raw.upper())
    if name is None:
        return raw
    return name if raw.upper() in name.upper() else f"{name} ({raw})"


def _unsupported_audio(unsupported: list[MediaState]) -> dict[str, object] | None:
    """The probe's `audio` when the camera's only sound is in a codec we do not take (else None)."""
    audio = next((m for m in unsupported if m.kind == "audio"), None)
    if audio is None:
        return None
    encoding, _, rate = audio.codec.partition("/")
    return {"codec": encoding, "name": NAMES.get(encoding.upper()),
            "clock_rate": int(rate.split("/")[0]) if rate.split("/")[0].isdigit() else None, "frames": 0,
            "supported": False}


async def probe_camera(url: str, username: str | None, password: str | None,
                       seconds: float = PROBE_SECONDS) -> dict[str, object]:
    """Play a camera for `seconds` (bounded by `PROBE_TIMEOUT_S` in all) and say what it sends and what
    is wrong with it, in plain words; never a password."""
    config = ClientConfig(url, username=username, password=password, backchannel=True,
                          connect_timeout=3.0, request_timeout=3.0, stall_timeout=4.0)
    loop = asyncio.get_running_loop()
    video: list[MediaFrame] = []  # bounded below: the first keyframe, then only counted
    counts = {"video": 0, "audio": 0}
    first_last: dict[str, list[int]] = {}

    def on_frame(frame: MediaFrame) -> None:
        counts[frame.kind] = counts.get(frame.kind, 0) + 1
        span = first_last.setdefault(frame.kind, [frame.pts_us, frame.pts_us])
        span[0], span[1] = min(span[0], frame.pts_us), max(span[1], frame.pts_us)
        if frame.kind == "video" and frame.keyframe and not video and frame.config is not None:
            video.append(frame)

    session = CameraSession(config, name="probe", reconnect=False, on_frame=on_frame)
    error: RtspError | None = None
    timed_out = False
    async with played(session) as run:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S - 1.0):
                await run.play(seconds)
        except RtspError as exc:
            error = exc
        except TimeoutError:
            timed_out = True
        connection = session.client.connection if session.client is not None else None
        media = connection.media_states(loop.time()) if connection is not None else []
    started = run.started
    tracks = [_track_report(s, started) for s in session.ingest.states.values()] if session.ingest else []
    problems: list[str] = []
    if error is not None:
        problems.append(_problem_for_error(error, url))
    elif timed_out:
        problems.append(f"the camera did not start sending within {PROBE_TIMEOUT_S:g} s")
    video_tracks = [t for t in tracks if t.media == "video"]
    audio_tracks = [t for t in tracks if t.media == "audio"]
    # sections left out for their codec (an ONVIF metadata stream, "unsupported media application", is no problem)
    unsupported = [m for m in media if m.state.startswith("unsupported codec") and m.kind in ("audio", "video")]
    for m in unsupported:
        codec = _codec_words(m.codec)
        if m.kind == "audio" and not audio_tracks:
            problems.append(f"audio codec {codec} is not supported: the camera's sound cannot be heard or "
                            "recorded (choose G.711, AAC or L16 in the camera's audio settings)")
        elif m.kind == "audio":
            problems.append(f"audio codec {codec} is not supported: that audio stream is left out (the camera's "
                            f"{_codec_words(audio_tracks[0].codec)} sound is used)")
        elif not video_tracks:
            problems.append(f"video codec {codec} is not supported: the camera's picture cannot be shown or "
                            "recorded (choose H.264 in the camera's video settings)")
        else:
            problems.append(f"video codec {codec} is not supported: that video stream is left out")
    if any(t.codec.upper() == "H265" for t in video_tracks):
        problems.append("H.265: a browser without H.265 support cannot show it (every browser shows H.264: "
                        "choose H.264 in the camera's settings)")
    playing = error is None and not timed_out
    if playing and not video_tracks:
        problems.append("no picture: the camera sends no video on this stream")
    elif playing and counts["video"] == 0:
        problems.append(f"the camera answered but sent no picture in {seconds:g} s")
    if playing and tracks and not any(t.sender_reports for t in tracks):
        problems.append("the camera sends no timing reports (RTCP Sender Reports): sound and picture are "
                        "lined up by arrival, less precisely")
    lost = sum(t.lost for t in tracks)
    if playing and lost:
        problems.append(f"{lost} packets were lost in {seconds:g} s: the network to the camera drops data")
    resolution = await asyncio.to_thread(_resolution, video[0]) if video else None
    span = first_last.get("video")
    fps = None
    if span is not None and counts["video"] > 1 and span[1] > span[0]:
        fps = round((counts["video"] - 1) / ((span[1] - span[0]) / 1e6), 1)
    backchannel = session.backchannel
    auth = ("failed" if error is not None and error.status == 401 else
            "ok" if session.tracks or tracks else "unknown")
    return {
        "url": redact(_without_secrets(url, config), [password]),
        "ok": playing and not problems,
        "playing": playing,
        "authentication": auth,  # ok, failed, unknown (never got that far)
        "transport": connection.transport if connection is not None else None,
        "tracks": [{"index": t.index, "kind": t.media, "codec": t.codec, "clock_rate": t.clock_rate,
                    "channels": t.channels, "packets": t.packets, "lost": t.lost,
                    "sender_reports": t.sender_reports} for t in tracks],
        "media": [{"kind": m.kind, "codec": m.codec, "direction": m.direction, "state": m.state} for m in media],
        "video": {"codec": video_tracks[0].codec, "name": NAMES.get(video_tracks[0].codec.upper()),
                  "width": resolution[0] if resolution else None,
                  "height": resolution[1] if resolution else None, "frame_rate": fps,
                  "frames": counts["video"]} if video_tracks else None,
        "audio": ({"codec": audio_tracks[0].codec, "name": NAMES.get(audio_tracks[0].codec.upper()),
                   "clock_rate": audio_tracks[0].clock_rate, "frames": counts["audio"], "supported": True}
                  if audio_tracks else _unsupported_audio(unsupported)),
        "backchannel": ({"codec": backchannel.format.encoding, "clock_rate": backchannel.format.clock_rate}
                        if backchannel is not None else None),
        "sender_reports": sum(t.sender_reports for t in tracks),
        "error": redact(_without_secrets(str(error), config), [password]) if error is not None else None,
        "problems": [redact(p, [password]) for p in problems],
    }


# routes ----------------------------------------------------------------------------------------------


def add_routes(app: FastAPI, service: Service, admin: Callable[[Request], Principal],
               address: Callable[[Request], str]) -> None:
    """POST /api/cameras, PATCH and DELETE /api/cameras/{id}, POST /api/cameras/probe (admins only)."""
    gate = service.gate
    AdminOnly = Annotated[Principal, Depends(admin)]
    probes = asyncio.Semaphore(MAX_PROBES)

    def audit(action: str, who: Principal, request: Request, camera: str | None, detail: str | None) -> None:
        gate.audit.record(action, user=who.name, address=address(request), camera=camera,
                          detail=detail[:400] if detail else None)

    async def body(request: Request) -> object:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise HTTPException(413, f"a camera's settings take at most {MAX_BODY} bytes")
        try:
            return json.loads(raw or b"null")
        except (ValueError, RecursionError):
            raise HTTPException(400, "the body must be JSON: an object of camera settings") from None

    def existing(camera: str) -> CameraConfig:
        config = service.camera_config(camera)
        if config is None:
            raise HTTPException(404, f"no camera {camera[:64]!r}")
        if camera in service.declared:
            raise HTTPException(409, f"camera {camera!r} is {DECLARED}: change it there")
        return config

    @app.post("/api/cameras/probe")
    async def probe(change: ProbeRequest, request: Request, who: AdminOnly) -> dict[str, object]:
        """Connect to a camera for a few seconds (at most 8) and say what it sends and what is wrong, in plain
        words. Two probes at a time: 429 beyond."""
        for key in ("url", "substream_url"):
            value = getattr(change, key)
            if value is not None and (problem := check_url(value)):
                return refused({key: problem})  # type: ignore[return-value]
        if probes.locked():
            raise HTTPException(429, f"{MAX_PROBES} probes are running: try again in a few seconds",
                                headers={"Retry-After": str(int(PROBE_TIMEOUT_S))})
        install_log_redaction([change.password, *_secrets(CameraConfig(id="probe", url=change.url)),
                               *(_secrets(CameraConfig(id="probe", url=change.substream_url))
                                 if change.substream_url else [])])
        async with probes:
            jobs = [probe_camera(change.url, change.username, change.password)]
            if change.substream_url:
                jobs.append(probe_camera(change.substream_url, change.username, change.password))
            results = await asyncio.gather(*jobs)
        answer = results[0]
        if len(results) > 1:
            answer["substream"] = results[1]
            answer["problems"] = [*answer["problems"], *(f"sub-stream: {p}" for p in results[1]["problems"])]
        audit("camera_probe", who, request, None, f"{answer['url']}: "
              + ("; ".join(answer["problems"]) or "ok"))  # type: ignore[arg-type]
        return answer

    @app.post("/api/cameras", status_code=201)
    async def add_camera(request: Request, who: AdminOnly) -> Any:
        """Add a camera (any CameraConfig field; `enabled`, default true). It starts at once and is kept
        in the database. 422 {field: message} when a setting is wrong; 409 when the id is taken."""
        data = await body(request)
        config = validate(data)
        enabled = enabled_of(data, True)
        if isinstance(config, dict) or isinstance(enabled, dict):
            return refused({**(config if isinstance(config, dict) else {}),
                            **(enabled if isinstance(enabled, dict) else {})})
        if service.camera_config(config.id) is not None:
            return JSONResponse({"detail": f"id: there is already a camera {config.id!r}",
                                 "fields": {"id": f"there is already a camera {config.id!r}"}}, 409)
        try:
            await service.add_camera(config, enabled)
        except KeyError:
            return JSONResponse({"detail": f"id: there is already a camera {config.id!r}",
                                 "fields": {"id": f"there is already a camera {config.id!r}"}}, 409)
        audit("camera_add", who, request, config.id,
              f"{redact(config.url, _secrets(config))}{'' if enabled else ' (disabled)'}")
        log.info("camera %s added by %s", config.id, who.name)
        return describe(config, enabled=enabled, declared=False)

    @app.patch("/api/cameras/{camera}")
    async def edit_camera(camera: str, request: Request, who: AdminOnly) -> Any:
        """Change an API-added camera: any CameraConfig field but its id, and `enabled`. Only this camera
        restarts (disabling stops it, keeping its configuration). 409 for a camera the YAML declares."""
        before = existing(camera)
        was_enabled = camera in service.cameras
        data = await body(request)
        config = validate(data, partial_of=before)
        enabled = enabled_of(data, was_enabled)
        if isinstance(config, dict) or isinstance(enabled, dict):
            return refused({**(config if isinstance(config, dict) else {}),
                            **(enabled if isinstance(enabled, dict) else {})})
        changed = changes(before, config)
        if enabled != was_enabled:
            changed.append("enabled" if enabled else "disabled")
        if changed:
            await service.replace_camera(config, enabled)
            audit("camera_edit", who, request, camera, ", ".join(changed))
            log.info("camera %s changed by %s: %s", camera, who.name, ", ".join(changed))
        return describe(service.camera_config(camera) or config, enabled=camera in service.cameras,
                        declared=False)

    @app.delete("/api/cameras/{camera}", status_code=204)
    async def remove_camera(camera: str, request: Request, who: AdminOnly) -> Response:
        """Stop an API-added camera and forget it; its recordings stay. 409 for a camera the YAML declares."""
        existing(camera)
        await service.remove_camera(camera)
        audit("camera_remove", who, request, camera, None)
        log.info("camera %s removed by %s", camera, who.name)
        return Response(status_code=204)



# export ------------------------------------------------------------------------------------------------


def _without_url_password(url: str) -> str:
    """`url` with the password of its user information left out (the user name kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{parts.username}@{host}", parts.path, parts.query, parts.fragment))


def export_yaml(declared: list[CameraConfig], stored: list[tuple[CameraConfig, bool]], *,
                with_passwords: bool = False) -> str:
    """The `cameras:` YAML of the current set: those the configuration file declares, then those added
    through the API (`stored`: config, enabled), each with a comment saying which; without
    `with_passwords`, passwords (given apart or in URLs) are left out, with a comment saying so."""
    import yaml

    lines = [f"# OpticLink cameras: {len(declared)} declared in cameras.yaml, {len(stored)} added through the API"]
    if not with_passwords:
        lines.append("# passwords omitted (opticlink cameras export --with-passwords to include them)")
    lines.append("cameras:" if declared or stored else "cameras: []")
    for config, origin in [(c, DECLARED) for c in declared] + [
            (c, "added through the API" + ("" if enabled else "; disabled there")) for c, enabled in stored]:
        data = config.model_dump(mode="json", exclude_defaults=True)
        data = {"id": config.id, "url": config.url, **data}
        omitted = False
        if not with_passwords:
            omitted = data.pop("password", None) is not None
            for key in ("url", "substream_url"):
                if data.get(key):
                    cleaned = _without_url_password(str(data[key]))
                    omitted = omitted or cleaned != data[key]
                    data[key] = cleaned
        lines.append(f"# {config.id}: {origin}" + ("; password omitted" if omitted else ""))
        lines.append(yaml.safe_dump([data], sort_keys=False, allow_unicode=True).rstrip("\n"))
    return "\n".join(lines) + "\n"
