"""Crash recovery of the cameras a node takes, one camera at a time (`record.recovery` for a cluster).

`record.recovery.recover` mends the whole recordings folder and index before anything records: right
for a node alone, wrong beside other nodes that record now (it would close their open gaps, mend the
segment they are writing, remove the file they just created). A node on a shared catalog mends only
the cameras it has just taken, before their recorders start: their segments still `writing` whose
file is on this machine's disk (the previous owner crashed: a worker here, or this node before its
restart) are repaired as `recover` does; a file on another machine's disk is left to its node. Their
open gaps are closed at the last recorded time, which the recorder then resumes from (it indexes the
time in between as a gap). Orphan files and the garbage list are left to a node alone's full recovery.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from opticlink.record.recovery import RecoveryReport, _repair, inside
from opticlink.store.recordings import Recordings


def recover_cameras(root: Path, recordings: Recordings, cameras: Iterable[str]) -> RecoveryReport:
    """Mend what a crash left of `cameras` (just claimed: nobody else records them now); see the module."""
    report = RecoveryReport()
    cameras = list(cameras)
    for camera in cameras:
        for segment in recordings.segments(camera, state="writing"):
            path = inside(root, segment.path)
            if path is not None and path.exists():
                _repair(root, recordings, segment, report)
    last = recordings.last_end_by_camera()
    for camera in cameras:
        if camera in last:
            report.last_wall[camera] = last[camera]
        for gap in recordings.gaps(camera, open_only=True):
            recordings.close_gap(gap.id, max(gap.start_wall, last.get(camera, gap.start_wall)))
            report.gaps_closed += 1
    return report
