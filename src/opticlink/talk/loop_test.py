"""The audio loop test against a running camera (asyncio adapter of `dsp.loop`).

It takes the camera's speaker as a talker of its own (`TALKER`: anyone else asking to talk meanwhile
is told it is busy), sends silence, the sweep, then silence again through the talk session paced in
real time as a browser does, and meanwhile hears the camera's microphone straight off its frame bus
(frames as the camera sent them, before echo cancellation). What left is taken from the talk
session's `on_sent` (each sample with its slot on the receiver clock: the echo canceller's
reference); what came back is laid on the same clock by the camera's sample count (RTP
timestamps), anchored so that the least delayed frame arrived just as its last sample was
captured (the session timeline adds a jitter floor that grows with load, which would count in
the delay). So the echo delay runs from a sample leaving to its echo captured, give or take the
camera's fastest one-way network time (about 2 ms against the simulator); the round trip, to its
frame reaching the service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from opticlink.camera.session import CameraSession
from opticlink.dsp.g711 import to_float
from opticlink.dsp.loop import CHIRP_HIGH_HZ, CHIRP_LEVEL_DBFS, CHIRP_LOW_HZ, CHIRP_S, LoopRecording, chirp
from opticlink.errors import OpticLinkError
from opticlink.hub import FrameBus, Subscription
from opticlink.media import AudioConfig, MediaFrame
from opticlink.talk.session import TalkBusy, TalkSession, TalkUnavailable

log = logging.getLogger(__name__)

TALKER = "audio test"  # who talks while the test runs, as other talkers are told
RUNNING = "audio_test_running"  # the runtime's `extras` key while a test runs
PRE_S = 0.4  # silence first: the camera's speaker starts playing, the noise is measured
MAX_DELAY_S = 1.0  # echoes up to this late are looked for (and heard for, after the sweep)
FRAME_S = 0.02
MAX_FRAMES = 2000  # heard frames kept (the test hears about 2 s)


class LoopTestBusy(OpticLinkError):
    """Another audio test runs on this camera."""


class Runtime(Protocol):
    """What the test uses of a camera's runtime (`api.service.CameraRuntime`)."""

    bus: FrameBus
    session: CameraSession
    talk: TalkSession | None
    extras: dict[str, object]


def _samples(frame: MediaFrame) -> np.ndarray | None:
    """A mono audio frame's samples, float; None for what the test cannot read (AAC, stereo)."""
    config = frame.config
    if frame.kind != "audio" or not isinstance(config, AudioConfig) or config.channels != 1:
        return None
    if config.codec in ("pcmu", "pcma"):
        return to_float(frame.data, config.codec)
    if config.codec == "l16":
        return np.frombuffer(frame.data, ">i2").astype(np.float32) / 32768.0
    return None


async def _listen(subscription: Subscription, session: CameraSession,
                  heard: list[tuple[np.ndarray, int, float, float]], skipped: list[str]) -> None:
    """The camera's audio as it comes: samples, rate, capture time (seconds on the camera's sample
    count, RTP, unwrapped; the session timeline without one) and arrival (receiver clock)."""
    first: tuple[int, float] | None = None  # (RTP timestamp, its count in seconds)
    while True:
        for queued in await subscription.get():
            frame = queued.frame
            samples = _samples(frame)
            if samples is None:
                if frame.kind == "audio" and not skipped:
                    skipped.append(frame.codec)
                continue
            assert isinstance(frame.config, AudioConfig)
            rate = frame.config.sample_rate
            if frame.rtp_timestamp is None:
                if session.epoch is None:
                    continue
                captured = session.epoch + frame.pts_us / 1e6
            else:
                if first is None:
                    first = (frame.rtp_timestamp, 0.0)
                captured = first[1] + _ticks(frame.rtp_timestamp - first[0]) / rate
            if len(heard) < MAX_FRAMES:
                heard.append((samples, rate, captured, queued.published))


def _place(heard: list[tuple[np.ndarray, int, float, float]], recording: LoopRecording) -> None:
    """Heard frames on the receiver clock: the sample count anchored so that the frame that came
    soonest after its last sample (the least delayed) arrived just as it was complete; a jump of the
    count (a reanchor, a camera's restart) starts a new anchor."""
    runs: list[list[tuple[np.ndarray, int, float, float]]] = []
    for entry in heard:
        if runs:
            last = runs[-1][-1]
            if abs((entry[2] - last[2]) - (entry[3] - last[3])) > 0.5:
                runs.append([])
        else:
            runs.append([])
        runs[-1].append(entry)
    for run in runs:
        offset = min(arrived - (captured + len(samples) / rate) for samples, rate, captured, arrived in run)
        for samples, rate, captured, arrived in run:
            recording.near(samples, rate, captured + offset, arrived)


def _ticks(difference: int) -> int:
    return ((difference + 0x80000000) & 0xFFFFFFFF) - 0x80000000


async def run(camera: str, runtime: Runtime, *, store: Callable[[dict[str, Any]], None] | None = None
              ) -> dict[str, Any]:
    """Run one test on `camera`; returns the result (and gives it to `store`). Raises `TalkBusy`
    (someone talks), `LoopTestBusy` (a test runs) or `TalkUnavailable` (no speaker, talkback off)."""
    talk = runtime.talk
    if talk is None:
        raise TalkUnavailable("the camera has no speaker to talk to")
    if runtime.extras.get(RUNNING):
        raise LoopTestBusy("an audio test is already running on this camera")
    if talk.talker is not None:
        raise TalkBusy(talk.talker)
    runtime.extras[RUNNING] = True
    loop = asyncio.get_running_loop()
    recording = LoopRecording(loop.time())
    original = talk.on_sent

    def sent(pcm: np.ndarray, rate: int, at: float) -> None:
        recording.far(pcm, rate, at)
        if original is not None:
            original(pcm, rate, at)

    subscription = runtime.bus.subscribe(f"audio test {camera}")  # before echo cancellation
    skipped: list[str] = []
    heard: list[tuple[np.ndarray, int, float, float]] = []
    listener = loop.create_task(_listen(subscription, runtime.session, heard, skipped),
                                name=f"audio-test-{camera}")
    try:
        info = await talk.start(TALKER)
        talk.on_sent = sent
        rate = int(info["rate"])  # type: ignore[call-overload]
        sweep = (chirp(rate) * 32767).astype(np.int16)
        tail = round(MAX_DELAY_S * rate) + round(FRAME_S * rate)
        pcm = np.concatenate([np.zeros(round(PRE_S * rate), np.int16), sweep, np.zeros(tail, np.int16)])
        frame = round(FRAME_S * rate)
        begin = loop.time()
        for i, offset in enumerate(range(0, len(pcm), frame)):  # paced in real time, as the speaker plays it
            await asyncio.sleep(max(0.0, begin + i * FRAME_S - loop.time()))
            if talk.talker != TALKER:
                raise TalkUnavailable(f"the camera's speaker was lost: {talk.error or 'closed'}")
            talk.push(TALKER, pcm[offset : offset + frame], rate)
        talk.stop(TALKER)
        await asyncio.sleep(0.3)  # the last frames on their way back
    finally:
        talk.on_sent = original
        if talk.talker == TALKER:
            talk.stop(TALKER)
        listener.cancel()
        runtime.bus.unsubscribe(subscription)
        runtime.extras.pop(RUNNING, None)
    _place(heard, recording)
    if recording.rate is None:
        why = f"its audio is {skipped[0]}, which the test cannot read" if skipped else "no audio came from it"
        raise TalkUnavailable(f"the camera's microphone cannot be tested: {why}")
    found, round_trip = await asyncio.to_thread(recording.result, max_delay=MAX_DELAY_S)
    result: dict[str, Any] = {
        "camera": camera, "tested_at": round(time.time(), 3),
        "chirp": {"low_hz": CHIRP_LOW_HZ, "high_hz": CHIRP_HIGH_HZ, "seconds": CHIRP_S, "level_dbfs": CHIRP_LEVEL_DBFS,
                  "rate": rate,
                  "codec": info["codec"]},
        "round_trip_ms": None if round_trip is None else round(round_trip * 1000, 1),
        **found.as_dict(),
    }
    log.info("audio test %s: %s (delay %s ms, level %s dB, PSR %.1f dB)", camera, result["recommendation"],
             result["echo_delay_ms"], result["echo_level_db"], found.psr_db)
    if store is not None:
        store(result)
    return result
