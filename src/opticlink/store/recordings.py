"""`Recordings`: the recording index (segments, gaps, the garbage list, per-camera settings).

A few calls per segment (open, about one update a GOP, close) and per gap: never per frame.
Times: wall in Unix seconds, media in microseconds of a run's recording clock (see `schema.segments`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update

from opticlink.store.database import Database
from opticlink.store.schema import camera_settings, gaps, garbage, segments


@dataclass(frozen=True, slots=True)
class SegmentRow:
    id: int
    camera: str
    run: int
    path: str  # relative to the recordings folder
    state: str  # writing, done
    start_wall: float
    end_wall: float
    media_start_us: int
    media_end_us: int
    wall_source: str
    bytes: int
    frames: int
    video_codec: str | None
    audio_codec: str | None
    keyframes: tuple[int, ...] = field(default=())  # media_us of each keyframe

    def wall_at(self, media_us: int) -> float:
        """The wall time of a media time of this segment (linear within the segment)."""
        span = self.media_end_us - self.media_start_us
        if span <= 0:
            return self.start_wall
        return self.start_wall + (media_us - self.media_start_us) / span * (self.end_wall - self.start_wall)

    def media_at(self, wall: float) -> int:
        """The media time of a wall time within this segment (clamped to it)."""
        span = self.end_wall - self.start_wall
        if span <= 0:
            return self.media_start_us
        share = min(1.0, max(0.0, (wall - self.start_wall) / span))
        return self.media_start_us + round(share * (self.media_end_us - self.media_start_us))


@dataclass(frozen=True, slots=True)
class GapRow:
    id: int
    camera: str
    start_wall: float
    end_wall: float | None
    cause: str
    detail: str | None


def _segment(r) -> SegmentRow:  # type: ignore[no-untyped-def]
    return SegmentRow(r.id, r.camera, r.run, r.path, r.state, r.start_wall, r.end_wall, r.media_start_us,
                      r.media_end_us, r.wall_source, r.bytes, r.frames, r.video_codec, r.audio_codec,
                      tuple(json.loads(r.keyframes or "[]")))


class Recordings:
    """Reads and writes of the recording tables, on the service's `Database`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine

    # segments

    def new_run(self, camera: str) -> int:
        """A run number no segment of `camera` has used."""
        with self.engine.connect() as c:
            last = c.execute(select(func.max(segments.c.run)).where(segments.c.camera == camera)).scalar_one()
        return 1 if last is None else int(last) + 1

    def add_segment(self, camera: str, run: int, path: str, *, start_wall: float, media_start_us: int,
                    wall_source: str, video_codec: str | None, audio_codec: str | None) -> int:
        with self.engine.begin() as c:
            return int(c.execute(insert(segments).values(
                camera=camera, run=run, path=path, state="writing", start_wall=start_wall, end_wall=start_wall,
                media_start_us=media_start_us, media_end_us=media_start_us, wall_source=wall_source, bytes=0,
                frames=0, video_codec=video_codec, audio_codec=audio_codec, keyframes="[]")).inserted_primary_key[0])

    def update_segment(self, segment_id: int, *, end_wall: float, media_end_us: int, bytes: int, frames: int,
                       keyframes: Iterable[int], done: bool = False) -> None:
        values: dict[str, object] = {"end_wall": end_wall, "media_end_us": media_end_us, "bytes": bytes,
                                     "frames": frames, "keyframes": json.dumps(list(keyframes))}
        if done:
            values["state"] = "done"
        with self.engine.begin() as c:
            c.execute(update(segments).where(segments.c.id == segment_id).values(**values))

    def segment(self, segment_id: int) -> SegmentRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(segments).where(segments.c.id == segment_id)).first()
        return None if row is None else _segment(row)

    def segments(self, camera: str | None = None, start_wall: float | None = None, end_wall: float | None = None,
                 *, state: str | None = None, limit: int | None = None) -> list[SegmentRow]:
        """Segments overlapping [start_wall, end_wall], oldest first."""
        query = select(segments).order_by(segments.c.start_wall, segments.c.id)
        if camera is not None:
            query = query.where(segments.c.camera == camera)
        if start_wall is not None:
            query = query.where(segments.c.end_wall >= start_wall)
        if end_wall is not None:
            query = query.where(segments.c.start_wall <= end_wall)
        if state is not None:
            query = query.where(segments.c.state == state)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as c:
            return [_segment(r) for r in c.execute(query)]

    def oldest_done(self, camera: str, limit: int) -> list[tuple[int, float, float, int, str]]:
        """(id, start_wall, end_wall, bytes, path) of `camera`'s oldest `limit` segments in state `done`,
        oldest first (as `segments` orders them): what retention weighs, without the keyframes `segments`
        parses for every row (retention runs after each segment closes, on up to `limit` rows a camera)."""
        query = (select(segments.c.id, segments.c.start_wall, segments.c.end_wall, segments.c.bytes, segments.c.path)
                 .where(segments.c.camera == camera, segments.c.state == "done")
                 .order_by(segments.c.start_wall, segments.c.id).limit(limit))
        with self.engine.connect() as c:
            return [(r.id, r.start_wall, r.end_wall, r.bytes, r.path) for r in c.execute(query)]

    def usage(self, camera: str | None = None) -> int:
        """Bytes of recorded segments (of `camera`, or all)."""
        query = select(func.coalesce(func.sum(segments.c.bytes), 0))
        if camera is not None:
            query = query.where(segments.c.camera == camera)
        with self.engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def retire(self, segment_ids: Iterable[int]) -> list[str]:
        """Remove segments from the index and put their files on the garbage list, in one transaction."""
        ids = list(segment_ids)
        if not ids:
            return []
        with self.engine.begin() as c:
            paths = [r.path for r in c.execute(select(segments.c.path).where(segments.c.id.in_(ids)))]
            for path in paths:
                c.execute(self._add_garbage(path))
            c.execute(delete(segments).where(segments.c.id.in_(ids)))
        return paths

    def garbage(self) -> list[str]:
        with self.engine.connect() as c:
            return [r.path for r in c.execute(select(garbage.c.path).order_by(garbage.c.id))]

    def forget_garbage(self, path: str) -> None:
        """The file is gone: its garbage row goes too."""
        with self.engine.begin() as c:
            c.execute(delete(garbage).where(garbage.c.path == path))

    # gaps

    def open_gap(self, camera: str, start_wall: float, cause: str, detail: str | None = None) -> int:
        with self.engine.begin() as c:
            return int(c.execute(insert(gaps).values(camera=camera, start_wall=start_wall, cause=cause,
                                                     detail=detail[:400] if detail else None))
                       .inserted_primary_key[0])

    def close_gap(self, gap_id: int, end_wall: float) -> None:
        with self.engine.begin() as c:
            c.execute(update(gaps).where(gaps.c.id == gap_id).values(end_wall=end_wall))

    def close_open_gaps(self, camera: str, end_wall: float) -> None:
        with self.engine.begin() as c:
            c.execute(update(gaps).where((gaps.c.camera == camera) & gaps.c.end_wall.is_(None))
                      .values(end_wall=end_wall))

    def gaps(self, camera: str | None = None, start_wall: float | None = None,
             end_wall: float | None = None, *, open_only: bool = False, limit: int | None = None) -> list[GapRow]:
        """Gaps overlapping a span, oldest first; `open_only`: those not ended yet; at most `limit`."""
        query = select(gaps).order_by(gaps.c.start_wall, gaps.c.id)
        if open_only:
            query = query.where(gaps.c.end_wall.is_(None))
        if limit is not None:
            query = query.limit(limit)
        if camera is not None:
            query = query.where(gaps.c.camera == camera)
        if start_wall is not None:
            query = query.where(gaps.c.end_wall.is_(None) | (gaps.c.end_wall >= start_wall))
        if end_wall is not None:
            query = query.where(gaps.c.start_wall <= end_wall)
        with self.engine.connect() as c:
            return [GapRow(r.id, r.camera, r.start_wall, r.end_wall, r.cause, r.detail) for r in c.execute(query)]

    def remove_gaps_before(self, camera: str, wall: float) -> int:
        with self.engine.begin() as c:
            return c.execute(delete(gaps).where((gaps.c.camera == camera) & (gaps.c.end_wall < wall))).rowcount

    # per-camera settings changed at runtime

    def camera_settings(self) -> dict[str, dict[str, object]]:
        with self.engine.connect() as c:
            return {r.camera: json.loads(r.settings) for r in c.execute(select(camera_settings))}

    def set_camera_settings(self, camera: str, settings: dict[str, object], now: float) -> None:
        text = json.dumps(settings, sort_keys=True)
        with self.engine.begin() as c:
            c.execute(self.database.upsert(camera_settings, {"camera": camera}, {"settings": text, "updated": now}))

    # recovery and retention

    def add_garbage(self, path: str) -> None:
        """Put a file no segment row names (an orphan) on the garbage list, before unlinking it."""
        with self.engine.begin() as c:
            c.execute(self._add_garbage(path))

    def _add_garbage(self, path: str):  # type: ignore[no-untyped-def]
        """The statement putting `path` on the garbage list, unless it is there already."""
        return self.database.conflict_insert(garbage).values(path=path).on_conflict_do_nothing(index_elements=["path"])

    def usage_by_camera(self) -> dict[str, int]:
        """Bytes of the segments of each camera (every state: a segment being written takes disk too)."""
        query = select(segments.c.camera, func.coalesce(func.sum(segments.c.bytes), 0)).group_by(segments.c.camera)
        with self.engine.connect() as c:
            return {camera: int(total) for camera, total in c.execute(query)}

    def segment_paths(self) -> set[str]:
        """The path of every indexed segment (any state)."""
        with self.engine.connect() as c:
            return {r.path for r in c.execute(select(segments.c.path))}

    def last_end_by_camera(self) -> dict[str, float]:
        """The latest `end_wall` of each camera's segments."""
        query = select(segments.c.camera, func.max(segments.c.end_wall)).group_by(segments.c.camera)
        with self.engine.connect() as c:
            return {camera: float(end) for camera, end in c.execute(query)}
