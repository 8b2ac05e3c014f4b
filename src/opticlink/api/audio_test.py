"""`POST /api/cameras/{id}/audio-test`: the audio loop test (`talk.loop_test`), for admins.

A sweep goes to the camera's speaker and is looked for in its microphone; the answer (round trip,
echo delay and level, confidence, recommendation) is kept with the camera's settings (key
`RESULT_KEY` in `Recordings.camera_settings`) and returned; `GET` gives the last one kept.
Refused with 409 while someone talks to the camera (saying who) or another test runs on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from opticlink.live.websocket import talker_name
from opticlink.store.recordings import Recordings
from opticlink.talk import loop_test
from opticlink.talk.session import TalkBusy, TalkUnavailable

if TYPE_CHECKING:
    from opticlink.api.service import Service

RESULT_KEY = "audio_test"  # where the last result is kept among the camera's settings


def router(service: Service, caller: Callable[..., Any]) -> APIRouter:
    """The audio test routes; `caller`: the dependency that gives the logged-in user (admins only here)."""
    routes = APIRouter()

    def admin(who: Any = Depends(caller)) -> Any:  # noqa: B008 (FastAPI's way)
        if not who.is_admin:
            raise HTTPException(403, "admins only")
        return who

    def runtime_of(camera: str) -> Any:
        runtime = service.cameras.get(camera)
        if runtime is None:
            raise HTTPException(404, f"no camera {camera!r}")
        return runtime

    @routes.post("/api/cameras/{camera}/audio-test")
    async def audio_test(camera: str, request: Request, who: Any = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        """Play a 0.5 s sweep (300-3400 Hz, -12 dBFS) on the camera's speaker and find it in its
        microphone: `round_trip_ms`, `echo_delay_ms`, `echo_level_db` (against what was sent), `psr_db`
        (confidence), `found`, `half_duplex` and `recommendation`. 409 while someone talks or a test runs."""
        runtime = runtime_of(camera)
        if not runtime.config.talkback:
            raise HTTPException(409, "talkback is off for this camera")

        def store(result: dict[str, Any]) -> None:
            recordings = Recordings(service.database)
            kept = recordings.camera_settings().get(camera, {})
            recordings.set_camera_settings(camera, {**kept, RESULT_KEY: result}, time.time())

        try:
            result = await loop_test.run(camera, runtime, store=store)
        except TalkBusy as exc:
            raise HTTPException(409, f"{talker_name(exc.talker)} is talking to this camera") from None
        except loop_test.LoopTestBusy as exc:
            raise HTTPException(409, str(exc)) from None
        except TalkUnavailable as exc:
            raise HTTPException(409, str(exc)) from None
        address = request.client.host if request.client is not None else "unknown"
        service.gate.audit.record("audio test", user=who.name, address=address, camera=camera,
                                  detail=str(result["recommendation"]))
        return result

    @routes.get("/api/cameras/{camera}/audio-test")
    async def last_audio_test(camera: str, _: Any = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        """The last audio test's result kept for the camera; 404 if none ran."""
        runtime_of(camera)
        kept = Recordings(service.database).camera_settings().get(camera, {}).get(RESULT_KEY)
        if kept is None:
            raise HTTPException(404, "no audio test has run on this camera")
        return dict(kept)

    return routes
