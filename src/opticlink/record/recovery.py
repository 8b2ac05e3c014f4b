"""Crash recovery of the recordings folder, run once at service start before any recording starts.

A crash (kill -9, power loss) can leave four kinds of debris, each finished here:

1. the garbage list: files whose rows were retired but not yet unlinked. They are unlinked (a missing
   file is fine) and their rows forgotten.
2. segments still in state `writing`: their file was cut mid-write. A segment file is a fragmented
   QuickTime file (`ftyp`, an empty `moov`, then `moof`+`mdat` pairs), so everything up to the last
   whole pair is playable: the torn tail is truncated off, the file is read once with PyAV (demux
   only) for its media end, frame count and keyframes, and the row becomes `done`. A file with no
   whole fragment is retired through the garbage list; a row whose file is missing is dropped.
3. orphans: `.mov` files under the root the index does not know (a crash between creating the file
   and inserting its row). They are removed through the garbage list, so a crash here is finished by
   the next recovery as well. Symlinks are never followed nor removed.
4. gaps still open (`end_wall` NULL): closed at the last wall time the index shows the camera
   recorded (its last segment's end), never before the gap's own start. The service was down from
   some unknown moment after that; the index cannot say when, so the gap is not stretched over the
   downtime (that would state a cause nobody observed). `RecoveryReport.last_wall` gives, per
   camera, this time, for the recorder to open a gap of its own (e.g. "stopped") up to now.

Every step is idempotent: a crash during recovery is finished by the next one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import av

from opticlink.store.recordings import Recordings, SegmentRow

log = logging.getLogger(__name__)

SUFFIX = ".mov"
MAX_FILES = 10_000_000  # bound of the orphan walk (files and directories seen)
_TYPE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-\xa9")


GAPS_PER_READ = 1000  # open gaps read (and closed) at a time


@dataclass(slots=True)
class RecoveryReport:
    """What `recover` did. `repaired`: writing segments whose torn tail was cut off; `adopted`: writing
    segments whose file was whole (nothing to cut), made `done`; `removed`: writing segments with no
    whole fragment, retired; `dropped`: rows whose file was missing; `orphans`: unindexed files
    removed; `garbage`: garbage-list entries finished; `bytes_truncated`: bytes cut off in all."""

    repaired: int = 0
    adopted: int = 0
    removed: int = 0
    dropped: int = 0
    orphans: int = 0
    garbage: int = 0
    bytes_truncated: int = 0
    gaps_closed: int = 0
    last_wall: dict[str, float] = field(default_factory=dict)  # camera → end of its last segment


@dataclass(frozen=True, slots=True)
class MediaSummary:
    """What the demuxer finds in a segment file; times in microseconds of file time."""

    end_us: int
    frames: int
    packets: int  # of every track
    keyframes_us: tuple[int, ...]


def whole_prefix(path: Path) -> int:
    """The length of the playable prefix of a fragmented QuickTime file: through its last whole
    `moof`+`mdat` pair, or 0 when it has no `ftyp`, no whole `moov` or no whole fragment.

    Reads only top-level box headers (32-bit size and type; size 1: a 64-bit size follows). Size 0
    means "to the end of the file": such a box cannot be told from one a crash cut (the mov muxer
    never writes one in fragmented mode), so like a torn header, a size below 8, or a type that is
    not four printable characters (zeros a crash left at the end of a file), it ends the walk.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        size = os.fstat(fd).st_size
        offset = 0
        seen_ftyp = seen_moov = False
        moof_end = -1  # end of a whole moof waiting for its mdat
        keep = 0
        for _ in range(size // 8 + 1):  # every box is at least 8 bytes
            header = os.pread(fd, 16, offset)
            if len(header) < 8:
                break
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    break
                box_size = struct.unpack(">Q", header[8:16])[0]
                if box_size < 16:
                    break
            elif box_size < 8:
                break  # 0 ("to the end of the file": a cut cannot be told from a whole box), or torn
            if not set(box_type) <= _TYPE_CHARS or offset + box_size > size:
                break  # garbage, or a box the crash cut
            end = offset + box_size
            if box_type == b"ftyp" and offset == 0:
                seen_ftyp = True
            elif box_type == b"moov" and seen_ftyp:
                seen_moov = True
            elif box_type == b"moof" and seen_moov:
                moof_end = end
            elif box_type == b"mdat" and moof_end == offset:
                keep = end  # a moof and its whole mdat
            elif box_type == b"mfra" and keep == offset > 0:
                keep = end  # the random-access index a clean close writes after the last fragment
            offset = end
        return keep
    finally:
        os.close(fd)


def summarize(path: Path) -> MediaSummary:
    """Demux a segment file (no decoding): media end of any track, frames (video packets, else audio
    packets), video keyframe times; microseconds of file time."""
    end_us = 0
    video = audio = 0
    keyframes: list[int] = []
    with av.open(str(path), "r") as container:
        has_video = bool(container.streams.video)
        for packet in container.demux():  # bounded by the file: the demuxer ends at its end
            time = packet.pts if packet.pts is not None else packet.dts
            if time is None or packet.size == 0 or packet.time_base is None:
                continue  # the demuxer's flush packets
            tb = packet.time_base
            start_us = int(time * tb * 1_000_000)
            end_us = max(end_us, int((time + (packet.duration or 0)) * tb * 1_000_000))
            if packet.stream.type == "video":
                video += 1
                if packet.is_keyframe:
                    keyframes.append(start_us)
            elif packet.stream.type == "audio":
                audio += 1
    return MediaSummary(end_us, video if has_video else audio, video + audio, tuple(sorted(keyframes)))


def inside(root: Path, relative: str) -> Path | None:
    """`root / relative` when `relative` is a plain relative path (no `..`, not absolute), else None."""
    pure = PurePosixPath(relative)
    if not relative or pure.is_absolute() or ".." in pure.parts:
        return None
    return root.joinpath(*pure.parts)


def unlink(root: Path, relative: str, who: str = "recovery") -> bool:
    """Remove a file of the recordings folder (never a symlink's target); True when it is gone or never
    was. `who` (recovery, retention) names the caller in the log."""
    path = inside(root, relative)
    if path is None:
        log.warning("%s: garbage path %r is not inside the recordings folder: not removed", who, relative)
        return True  # never ours to remove: the row goes
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("%s: cannot remove %s: %s (kept on the garbage list)", who, path, e)
        return False
    return True


def _finish_garbage(root: Path, recordings: Recordings, report: RecoveryReport) -> None:
    for relative in recordings.garbage():
        if unlink(root, relative):
            recordings.forget_garbage(relative)
            report.garbage += 1
            log.info("recovery: removed %s (garbage list)", relative)


def _retire(root: Path, recordings: Recordings, segment: SegmentRow) -> None:
    """Row to the garbage list, file unlinked, garbage row forgotten: crash-safe at every step."""
    recordings.retire([segment.id])
    if unlink(root, segment.path):
        recordings.forget_garbage(segment.path)


def _repair(root: Path, recordings: Recordings, segment: SegmentRow, report: RecoveryReport) -> None:
    path = inside(root, segment.path)
    try:
        info = None if path is None else path.lstat()
    except FileNotFoundError:
        info = None
    if path is None or info is None or not stat.S_ISREG(info.st_mode):
        recordings.retire([segment.id])
        recordings.forget_garbage(segment.path)  # nothing of ours to unlink
        report.dropped += 1
        log.info("recovery: dropped segment %d (%s): no such file", segment.id, segment.path)
        return
    try:
        keep = whole_prefix(path)
    except OSError as e:
        log.warning("recovery: cannot read %s: %s (left as it is)", segment.path, e)
        return
    summary = None
    if keep > 0:
        if keep < info.st_size:
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                os.ftruncate(fd, keep)
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            summary = summarize(path)
        except (av.FFmpegError, OSError) as e:
            log.warning("recovery: %s unreadable after repair: %s", segment.path, e)
    if summary is None or summary.packets == 0:
        _retire(root, recordings, segment)
        report.removed += 1
        log.info("recovery: removed segment %d (%s): no whole fragment", segment.id, segment.path)
        return
    cut = info.st_size - keep
    recordings.update_segment(
        segment.id, end_wall=segment.start_wall + summary.end_us / 1e6,
        media_end_us=segment.media_start_us + summary.end_us, bytes=keep, frames=summary.frames,
        keyframes=[segment.media_start_us + k for k in summary.keyframes_us], done=True)
    report.bytes_truncated += cut
    if cut:
        report.repaired += 1
        log.info("recovery: repaired segment %d (%s): cut %d torn bytes, %.3f s kept, %d frames",
                 segment.id, segment.path, cut, summary.end_us / 1e6, summary.frames)
    else:
        report.adopted += 1
        log.info("recovery: adopted segment %d (%s): whole, %.3f s, %d frames",
                 segment.id, segment.path, summary.end_us / 1e6, summary.frames)


def _walk(root: Path) -> tuple[list[str], list[Path]]:
    """Regular `.mov` files under root (relative POSIX paths) and the directories below root, deepest
    first; symlinks are neither followed nor listed. Bounded by `MAX_FILES` entries."""
    files: list[str] = []
    directories: list[Path] = []
    pending = [root]
    seen = 0
    while pending and seen < MAX_FILES:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as e:
            log.warning("recovery: cannot list %s: %s", directory, e)
            continue
        for entry in entries:
            seen += 1
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
                directories.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) and entry.name.endswith(SUFFIX):
                files.append(Path(entry.path).relative_to(root).as_posix())
    if pending:
        log.warning("recovery: more than %d entries under %s: the orphan scan stopped early", MAX_FILES, root)
    directories.sort(key=lambda p: len(p.parts), reverse=True)
    return files, directories


def _remove_orphans(root: Path, recordings: Recordings, report: RecoveryReport) -> None:
    if not root.is_dir():
        return
    files, directories = _walk(root)
    known = recordings.segment_paths() | set(recordings.garbage())
    for relative in files:
        if relative in known:
            continue
        recordings.add_garbage(relative)
        if unlink(root, relative):
            recordings.forget_garbage(relative)
            report.orphans += 1
            log.info("recovery: removed orphan %s (in no index row)", relative)
    for directory in directories:  # deepest first; only empty ones go (nothing records yet)
        with contextlib.suppress(OSError):
            directory.rmdir()


def _close_gaps(recordings: Recordings, report: RecoveryReport) -> None:
    last = recordings.last_end_by_camera()
    report.last_wall = last
    while batch := recordings.gaps(open_only=True, limit=GAPS_PER_READ):  # each pass closes what it read
        for gap in batch:
            end = max(gap.start_wall, last.get(gap.camera, gap.start_wall))
            recordings.close_gap(gap.id, end)
            report.gaps_closed += 1
            log.info("recovery: closed gap %d of %s (%s) at %.3f, the camera's last recorded time",
                     gap.id, gap.camera, gap.cause, end)


def recover(root: Path, recordings: Recordings) -> RecoveryReport:
    """Bring the recordings folder and its index back to a consistent state after a crash (see the
    module's docstring). Must run before any recorder writes: it removes every `.mov` under `root`
    the index does not know, and repairs every segment still marked `writing`."""
    report = RecoveryReport()
    _finish_garbage(root, recordings, report)
    for segment in recordings.segments(state="writing"):
        _repair(root, recordings, segment, report)
    _remove_orphans(root, recordings, report)
    _close_gaps(recordings, report)
    log.info("recovery: %d repaired, %d adopted, %d removed, %d dropped, %d orphans, %d garbage, "
             "%d bytes truncated, %d gaps closed", report.repaired, report.adopted, report.removed, report.dropped,
             report.orphans, report.garbage, report.bytes_truncated, report.gaps_closed)
    return report
