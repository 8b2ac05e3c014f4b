"""`opticlink capture`: record a camera's aligned stream to Matroska for any tool to check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opticlink.camera.oneshot import played
from opticlink.camera.session import CameraSession
from opticlink.errors import RtspError
from opticlink.media import MediaFrame
from opticlink.record.edges import RunEnd, RunStart
from opticlink.record.mkv import MatroskaWriter, WriteSummary
from opticlink.rtsp.client import ClientConfig
from opticlink.sync import SyncStats

MERGE_HOLD = 0.25  # seconds a frame may wait for the other track before it is written


@dataclass(slots=True)
class CaptureResult:
    file: WriteSummary
    sync: SyncStats | None
    error: str | None = None
    skipped: list[str] = field(default_factory=list)  # media the camera sends that the file lacks, and why


async def capture(config: ClientConfig, seconds: float, path: str | Path, *, audio_offset_ms: float = 0.0,
                  on_progress: Callable[[float, SyncStats | None], None] | None = None) -> CaptureResult:
    """Play `config` for `seconds` after PLAY and write the frames, with the engine's times, to `path`.

    As a recording does, the file's first frames are placed once the sync is steady (`RunStart`), and
    it ends at a whole picture (`RunEnd`)."""
    writer = MatroskaWriter(path)
    start: RunStart | None = RunStart()
    end = RunEnd()

    def write(frame: MediaFrame) -> None:
        nonlocal start
        placed: list[MediaFrame] | None = [frame]
        if start is not None:
            placed = [*start.place(), frame] if frame.reanchored else start.push(frame)
            if placed is None:
                return
            start = None
        for ready in placed:
            for old in end.push(ready):
                writer.write(old)

    session = CameraSession(config, name="capture", reconnect=False, on_frame=write,
                            audio_offset_ms=audio_offset_ms, merge_hold=MERGE_HOLD)

    def progress(elapsed: float) -> None:
        if on_progress is not None:
            on_progress(elapsed, session.sync_stats())

    error = None
    async with played(session) as run:
        try:
            await run.play(seconds, progress, every=1.0)
        except RtspError as exc:
            error = str(exc)
        stats = session.sync_stats()
        skipped = _skipped(session)
    for held in start.place() if start is not None else []:
        for old in end.push(held):
            writer.write(old)
    for held in end.close():
        writer.write(held)
    return CaptureResult(writer.close(), stats, error, skipped)


def _skipped(session: CameraSession) -> list[str]:
    """The camera's media sections it sends but we do not receive (an unsupported codec...)."""
    if session.client is None:
        return []
    return [f"{s.media.kind} {s.media.format.rtpmap if s.media.format else '?'} (media {s.position}): {s.reason}"
            for s in session.client.connection.skipped if s.direction in ("sendrecv", "recvonly")]
