"""Retention: which recorded segments to delete, and deleting them crash-safely.

Limits (None: no limit): per camera an age (`retain_days`) and a size (`retain_gb`); over all cameras
a size (`retain_gb`) and a free-space floor on the recordings filesystem (`min_free_gb`). Sizes are
decimal gigabytes (10⁹ bytes), counted from the index's `bytes` of every segment, the one being
written included (it takes disk too). Deletion goes oldest first: within a camera for its own
limits, globally (oldest `start_wall` of any camera) for the overall size and the floor. A segment
in state `writing` is never deleted.

`plan` is the policy: a pure function of the oldest segments of each camera, the usage and the free
space. `Retention` applies it: it reads those from the index in batches, retires the chosen rows
(rows → garbage list in one transaction), unlinks the files and forgets the garbage rows, so a crash
at any point leaves a garbage row to finish (here, or by `recovery.recover`), never an indexed segment
without its file. It also drops gaps older than a camera's oldest remaining segment, so the timeline
does not show ancient gaps.
"""

from __future__ import annotations

import heapq
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from opticlink.record.recovery import unlink
from opticlink.store.recordings import Recordings

log = logging.getLogger(__name__)

GB = 1_000_000_000
DAY_S = 86_400.0


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@dataclass(frozen=True, slots=True)
class CameraLimits:
    days: float | None = None
    gb: float | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deletable (state `done`) segment, as `plan` needs it."""

    id: int
    camera: str
    start_wall: float
    end_wall: float
    bytes: int
    path: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """Segments to delete, oldest first per limit, each with why; `more`: a limit may still be over
    once these are gone, beyond the candidates `plan` was shown (fetch the next batch and plan again)."""

    chosen: tuple[Candidate, ...] = ()
    reasons: Mapping[int, str] = field(default_factory=dict)  # id → age, camera_size, total_size, free_space
    more: bool = False


def _bytes(gb: float | None) -> int | None:
    return None if gb is None else int(gb * GB)


def plan(now: float, oldest: Mapping[str, Sequence[Candidate]], complete: Mapping[str, bool],
         usage: Mapping[str, int], cameras: Mapping[str, CameraLimits], *, retain_gb: float | None = None,
         min_free_gb: float | None = None, free_bytes: int | None = None) -> Plan:
    """Choose what to delete.

    `oldest[camera]`: that camera's oldest deletable segments, oldest first (a prefix of them all;
    `complete[camera]` says whether it is all of them). `usage[camera]`: bytes of all its segments,
    the writing one included. `free_bytes`: free space on the recordings filesystem now.
    """
    chosen: list[Candidate] = []
    reasons: dict[int, str] = {}
    usage = dict(usage)
    heads = {camera: 0 for camera in oldest}  # index of each camera's oldest segment not chosen
    more = False

    def take(candidate: Candidate, reason: str) -> None:
        chosen.append(candidate)
        reasons[candidate.id] = reason
        usage[candidate.camera] = usage.get(candidate.camera, 0) - candidate.bytes

    for camera, candidates in oldest.items():
        limits = cameras.get(camera, CameraLimits())
        horizon = None if limits.days is None else now - limits.days * DAY_S
        cap = _bytes(limits.gb)
        for candidate in candidates:
            if horizon is not None and candidate.end_wall < horizon:
                take(candidate, "age")
            elif cap is not None and usage.get(camera, 0) > cap:
                take(candidate, "camera_size")
            else:
                break
            heads[camera] += 1
        else:
            more = more or (bool(candidates) and not complete.get(camera, True))

    total_cap = _bytes(retain_gb)
    floor = _bytes(min_free_gb)
    need_free = 0 if floor is None or free_bytes is None else max(0, floor - free_bytes)
    freed = sum(c.bytes for c in chosen)
    heap = [(oldest[camera][i].start_wall, oldest[camera][i].id, camera)
            for camera, i in heads.items() if i < len(oldest[camera])]
    heapq.heapify(heap)
    blocked = [camera for camera, i in heads.items() if i >= len(oldest[camera]) and not complete.get(camera, True)]
    for _ in range(sum(len(c) for c in oldest.values()) + 1):  # each turn takes one candidate or ends
        over_total = total_cap is not None and sum(usage.values()) > total_cap
        under_floor = freed < need_free
        if not (over_total or under_floor):
            break
        if blocked or not heap:
            # a camera's batch ran out: its next segment may be the globally oldest
            more = more or bool(blocked)
            break
        _, _, camera = heapq.heappop(heap)
        candidate = oldest[camera][heads[camera]]
        take(candidate, "total_size" if over_total else "free_space")
        freed += candidate.bytes
        heads[camera] += 1
        if heads[camera] < len(oldest[camera]):
            following = oldest[camera][heads[camera]]
            heapq.heappush(heap, (following.start_wall, following.id, camera))
        elif not complete.get(camera, True):
            blocked.append(camera)
    return Plan(tuple(chosen), reasons, more)


class Retention:
    """Applies the retention limits to one recordings folder and its index.

    `cameras`: camera → (retain_days, retain_gb), None for no limit (a camera absent: no limit of
    its own). `retain_gb`: all cameras together; `min_free_gb`: free space to keep on the recordings
    filesystem (`disk_usage(root)`, `shutil.disk_usage` unless a test gives another). Call `run_once`
    about every minute and after each segment closes, from one thread at a time; each call does a
    bounded amount of work (`max_rounds` batches of `batch` segments) and leaves the rest to the next.
    """

    def __init__(self, root: Path, recordings: Recordings,
                 cameras: Mapping[str, tuple[float | None, float | None]] | None = None, *,
                 retain_gb: float | None = None, min_free_gb: float | None = None,
                 disk_usage: Callable[[Path], DiskUsage | tuple[int, int, int]] = shutil.disk_usage,
                 batch: int = 256, max_rounds: int = 16) -> None:
        self.root = root
        self.recordings = recordings
        self.cameras = {camera: CameraLimits(days, gb) for camera, (days, gb) in (cameras or {}).items()}
        self.retain_gb = retain_gb
        self.min_free_gb = min_free_gb
        self.disk_usage = disk_usage
        self.batch = batch
        self.max_rounds = max_rounds

    def run_once(self, now: float) -> list[str]:
        """Delete what the limits say at wall time `now`; returns the paths (relative to the root)
        of the files deleted, garbage left by an earlier run included."""
        deleted = self._finish_garbage()
        reasons: Counter[str] = Counter()
        cameras = set(self.cameras)
        for _ in range(self.max_rounds):
            decision = self._plan(now, cameras)
            if not decision.chosen:
                break
            for candidate in decision.chosen:
                reasons[decision.reasons[candidate.id]] += 1
            for relative in self.recordings.retire(c.id for c in decision.chosen):
                if self._unlink(relative):
                    self.recordings.forget_garbage(relative)
                    deleted.append(relative)
                    log.debug("retention: deleted %s", relative)
            if not decision.more:
                break
        self._drop_old_gaps(now, cameras)
        if reasons:
            log.info("retention: deleted %d segments (%s)", sum(reasons.values()),
                     ", ".join(f"{n} by {reason}" for reason, n in sorted(reasons.items())))
        return deleted

    def _plan(self, now: float, cameras: set[str]) -> Plan:
        """One batch's plan; adds the cameras the index holds to `cameras`.

        A camera's candidates are read only when a limit could choose one of them now (its age limit,
        its size over its cap, or all cameras over the total or under the free-space floor): most runs
        read none, instead of `batch` rows of every camera after each segment closes (rows whose
        number, and so each run's memory and time, grew with the index for the first `batch`
        segments of every camera: hours of a camera's recording)."""
        usage = self.recordings.usage_by_camera()
        cameras.update(usage)
        free = None
        if self.min_free_gb is not None:
            try:
                free = int(self.disk_usage(self.root)[2])
            except OSError as e:
                log.warning("retention: cannot read the free space of %s: %s", self.root, e)
        total_cap, floor = _bytes(self.retain_gb), _bytes(self.min_free_gb)
        pressed = ((total_cap is not None and sum(usage.values()) > total_cap)
                   or (floor is not None and free is not None and free < floor))
        oldest: dict[str, list[Candidate]] = {}
        complete: dict[str, bool] = {}
        for camera in usage:
            limits = self.cameras.get(camera, CameraLimits())
            cap = _bytes(limits.gb)
            if not pressed and limits.days is None and (cap is None or usage[camera] <= cap):
                continue  # nothing `plan` weighs could choose this camera's segments
            rows = self.recordings.oldest_done(camera, self.batch)
            oldest[camera] = [Candidate(id_, camera, start, end, size, path) for id_, start, end, size, path in rows]
            complete[camera] = len(rows) < self.batch
        return plan(now, oldest, complete, usage, self.cameras, retain_gb=self.retain_gb,
                    min_free_gb=self.min_free_gb, free_bytes=free)

    def _unlink(self, relative: str) -> bool:
        return unlink(self.root, relative, "retention")

    def _finish_garbage(self) -> list[str]:
        done = []
        for relative in self.recordings.garbage():
            if self._unlink(relative):
                self.recordings.forget_garbage(relative)
                done.append(relative)
        return done

    def _drop_old_gaps(self, now: float, cameras: set[str]) -> None:
        """Gaps that ended before a camera's oldest remaining segment go; for a camera with no segment
        left, those older than its age limit."""
        for camera in sorted(cameras):
            first = self.recordings.segments(camera, limit=1)
            if first:
                self.recordings.remove_gaps_before(camera, first[0].start_wall)
            elif (days := self.cameras.get(camera, CameraLimits()).days) is not None:
                self.recordings.remove_gaps_before(camera, now - days * DAY_S)
