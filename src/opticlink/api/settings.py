"""A camera's audio preferences, changed by an admin while it runs: live audio, audio in recordings,
talk, the audio offset and half duplex.

Each change takes effect at once, on the running camera, without restarting its session: live
viewers stop or start getting its sound, the sync engine slews to the new offset, talk is refused
(and an active talk ended) or allowed again, half duplex applies from the next talk granted, and the
recorder reads `record_audio` at its next segment. The camera's `CameraConfig` is changed in place,
so everything holding it (status, the recorder, the live endpoint) sees the new values. Changes are
kept in the database (`Recordings.camera_settings`) and override the YAML's values at every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict

from opticlink.api.config import CameraConfig
from opticlink.camera.session import CameraSession
from opticlink.live.feed import LiveFeed
from opticlink.live.websocket import announce_talk_available, end_talk
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from opticlink.talk.session import TalkSession


class CameraRuntime(Protocol):
    """What the settings touch of a camera's runtime (`api.service.CameraRuntime`)."""

    config: CameraConfig
    live: LiveFeed
    session: CameraSession
    talk: TalkSession | None
    extras: dict[str, object]

log = logging.getLogger(__name__)

SETTINGS = ("live_audio", "record_audio", "talkback", "audio_offset_ms", "half_duplex")
TALKBACK_OFF = "talkback is off for this camera"

OffsetMs = Annotated[float, *CameraConfig.model_fields["audio_offset_ms"].metadata]  # CameraConfig's bounds


class CameraSettings(BaseModel):
    """A change of a camera's settings (the body of a PATCH): the fields given change, the others stay."""

    model_config = ConfigDict(extra="forbid")

    live_audio: bool | None = None
    record_audio: bool | None = None
    talkback: bool | None = None
    audio_offset_ms: OffsetMs | None = None
    half_duplex: bool | None = None

    def changes(self) -> dict[str, object]:
        """The settings given (null is "no change")."""
        return self.model_dump(exclude_none=True)


def effective(config: CameraConfig) -> dict[str, object]:
    """A camera's settings as they apply now."""
    return {name: getattr(config, name) for name in SETTINGS}


def talk_unavailable(runtime: CameraRuntime) -> str | None:
    """Why nobody may talk to the camera now, if so: talkback off, or no speaker."""
    if not runtime.config.talkback:
        return TALKBACK_OFF
    return runtime.talk.no_speaker if runtime.talk is not None else None


def apply(runtime: CameraRuntime, changes: Mapping[str, object], now: float) -> dict[str, tuple[object, object]]:
    """Apply `changes` (names from `SETTINGS`) to a running camera at once; returns what changed, as
    {name: (old, new)}. Raises ValueError (pydantic's ValidationError for a value `CameraConfig`
    refuses) before changing anything. `now`: the loop's time."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ValueError(f"not a setting that changes at runtime: {', '.join(unknown)}")
    config = runtime.config
    checked = CameraConfig.model_validate({**config.model_dump(), **changes})
    changed = {name: (getattr(config, name), getattr(checked, name)) for name in SETTINGS
               if name in changes and getattr(checked, name) != getattr(config, name)}
    for name, (_, new) in changed.items():
        setattr(config, name, new)  # in place: every holder of the camera's config sees it
    if "live_audio" in changed:
        runtime.live.set_audio(config.live_audio, now)
    if "audio_offset_ms" in changed:
        runtime.session.set_audio_offset(config.audio_offset_ms)
    talk = runtime.talk
    if "talkback" in changed and talk is not None:
        if not config.talkback:
            end_talk(runtime.live, talk, TALKBACK_OFF, now)
            if talk.open:  # the camera's speaker is let go of at once, even one kept open
                with contextlib.suppress(RuntimeError):  # no loop: nothing can be open
                    runtime.extras["talk_closing"] = asyncio.get_running_loop().create_task(talk.close())
        announce_talk_available(runtime.live, talk, talk_unavailable(runtime), now)
    return changed


def persist(database: Database, camera: str, changes: Mapping[str, object]) -> None:
    """Keep `changes` of `camera`'s settings, over those kept before."""
    store = Recordings(database)
    kept = store.camera_settings().get(camera, {})
    store.set_camera_settings(camera, {**kept, **changes}, time.time())


RESULTS = ("audio_test",)  # kept with the settings, not settings: the last audio loop test (talk.loop_test)


def restore(cameras: Mapping[str, CameraRuntime], database: Database, now: float) -> None:
    """At start: the settings kept in the database, over the YAML's. Settings of a camera no longer
    configured stay kept; a value no longer valid is skipped with a warning."""
    for camera, kept in Recordings(database).camera_settings().items():
        runtime = cameras.get(camera)
        if runtime is None:
            continue
        for name, value in kept.items():
            if name in RESULTS:
                continue
            try:
                apply(runtime, {name: value}, now)
            except ValueError as exc:
                log.warning("camera %s: kept setting %s=%r not applied: %s", camera, name, value, exc)
