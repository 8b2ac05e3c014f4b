"""Reading a camera's recordings back: frames between two wall times, across segments and runs.

`read_frames` demuxes the segment files one after the other with PyAV (a segment is never loaded
whole: packets come as the demuxer reads them, and at most a fragment's worth waits to be put in
decode order) and gives each frame as a `MediaFrame` in the layout the live path uses (video NAL
units 4-byte length-prefixed, parameter sets from the file's avcC/hvcC; audio as recorded), with its
media time (the run's recording clock: `segment.media_start_us` + file time) and its wall time.

It starts at the last video keyframe at or before `start_wall`, so the first picture decodes, and
stops after `end_wall`. Tracks are interleaved by decode time. Frames of different runs keep their
own run's media time: a consumer sees `run` change and knows a gap lies between.

A segment's first audio packet is placed where it belongs: the fragmented QuickTime muxer (empty
`moov`, no edit list) cannot say that a track's first sample begins after file time 0, so the
demuxer gives it time 0 and stretches its duration to the next packet; the true start is the next
packet's time minus the first packet's own length.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from opticlink.media import AudioConfig, MediaFrame, VideoConfig, length_prefixed, split_annexb
from opticlink.store.recordings import SegmentRow

log = logging.getLogger(__name__)

AUDIO_CODECS = {"pcm_mulaw": "pcmu", "pcm_alaw": "pcma", "pcm_s16be": "l16", "aac": "aac"}
MAX_WAITING = 4096  # packets held to put the tracks in decode order (a fragment holds about 0.5 s)
VIDEO, AUDIO = 0, 1  # the `track` of the frames read back
KEYFRAME_SLACK_US = 1000  # a keyframe this close before the one the index names is that one


@dataclass(slots=True)
class RecordedFrame:
    frame: MediaFrame  # pts_us/dts_us: media time in the run; config: VideoConfig or AudioConfig
    wall: float  # Unix seconds (segment.wall_at(media))
    segment: int  # segment id
    run: int
    sample: int | None = None  # audio: its first sample's position on the run's sample clock (exact)
    samples: int = 0  # audio: how many samples it holds (per channel)


def parameter_sets(codec: str, extradata: bytes | None) -> tuple[bytes, ...]:
    """The parameter sets of an avcC/hvcC record (or of Annex B extradata): (SPS, PPS) for H.264,
    (VPS, SPS, PPS) for H.265, the first of each kind; empty when the record holds none."""
    data = bytes(extradata or b"")
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        nalus = split_annexb(data)
    elif codec == "h264":
        nalus = _avcc_nalus(data)
    else:
        nalus = _hvcc_nalus(data)
    kinds = (7, 8) if codec == "h264" else (32, 33, 34)
    found: dict[int, bytes] = {}
    for nal in nalus:
        kind = nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F
        if kind in kinds and kind not in found:
            found[kind] = nal
    return tuple(found[k] for k in kinds) if all(k in found for k in kinds) else ()


def nal_length_size(codec: str, extradata: bytes | None) -> int:
    """Bytes of each NAL unit's length in the file's packets (avcC/hvcC `lengthSizeMinusOne` + 1)."""
    data = bytes(extradata or b"")
    if codec == "h264" and len(data) > 4 and data[0] == 1:
        return (data[4] & 3) + 1
    if codec == "h265" and len(data) > 21 and data[0] == 1:
        return (data[21] & 3) + 1
    return 4


def _avcc_nalus(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    if len(data) < 7 or data[0] != 1:
        return out
    pos = 6
    count = data[5] & 0x1F
    for group in range(2):
        for _ in range(count):
            if pos + 2 > len(data):
                return out
            size = int.from_bytes(data[pos:pos + 2], "big")
            out.append(data[pos + 2:pos + 2 + size])
            pos += 2 + size
        if group == 0:
            if pos >= len(data):
                return out
            count = data[pos]
            pos += 1
    return out


def _hvcc_nalus(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    if len(data) < 23 or data[0] != 1:
        return out
    pos = 23
    for _ in range(data[22]):
        if pos + 3 > len(data):
            break
        count = int.from_bytes(data[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(data):
                return out
            size = int.from_bytes(data[pos:pos + 2], "big")
            out.append(data[pos + 2:pos + 2 + size])
            pos += 2 + size
    return out


def _relength(data: bytes, size: int) -> bytes:
    """NAL units prefixed by `size`-byte lengths, in the 4-byte layout."""
    nalus, pos = [], 0
    while pos + size <= len(data):
        n = int.from_bytes(data[pos:pos + size], "big")
        nalus.append(data[pos + size:pos + size + n])
        pos += size + n
    return length_prefixed(nalus)


def start_point(segments: list[SegmentRow], start_wall: float) -> tuple[int, int]:
    """Where reading starts: (index in `segments`, media time) of the last video keyframe at or before
    `start_wall` (else the first keyframe after it); for audio-only segments, the media time of
    `start_wall` in the segment holding it. `segments` are in wall order."""
    best: tuple[int, int] | None = None
    for i, segment in enumerate(segments):
        if segment.start_wall > start_wall and best is not None:
            break
        keyframes = segment.keyframes if segment.video_codec else ()
        if not keyframes:
            if segment.video_codec is None and (best is None or segment.start_wall <= start_wall):
                best = (i, segment.media_at(start_wall) if segment.start_wall <= start_wall else segment.media_start_us)
            continue
        walls = [segment.wall_at(k) for k in keyframes]
        at = bisect.bisect_right(walls, start_wall) - 1
        if at >= 0:
            best = (i, keyframes[at])
        elif best is None:
            best = (i, keyframes[0])
    if best is None:
        raise ValueError("no recording at or after the start")
    return best


def read_frames(root: Path, segments: list[SegmentRow], start_wall: float,
                end_wall: float | None = None) -> Iterator[RecordedFrame]:
    """The recorded frames of `segments` (one camera's, in wall order: `Recordings.segments`) from the
    last keyframe at or before `start_wall` to `end_wall` (None: to the end), tracks interleaved by
    decode time. A missing or unreadable file is skipped (logged); a torn tail ends its segment."""
    chosen = sorted((s for s in segments if end_wall is None or s.start_wall <= end_wall),
                    key=lambda s: (s.start_wall, s.id))
    chosen = [s for s in chosen if s.end_wall >= start_wall]
    if not chosen:
        return
    first, start_media = start_point(chosen, start_wall)
    waiting: dict[int, deque[RecordedFrame]] = {VIDEO: deque(), AUDIO: deque()}
    last_dts: dict[int, int] = {}
    run: int | None = None
    for index in range(first, len(chosen)):
        segment = chosen[index]
        if run is not None and segment.run != run:  # a gap: what waits goes out before the next run
            yield from _drain(waiting, None)
            last_dts.clear()
        run = segment.run
        skip_before = start_media if index == first else None
        tracks = {VIDEO} if segment.video_codec else set()
        if segment.audio_codec:
            tracks.add(AUDIO)
        ended: set[int] = set()  # tracks past end_wall (the demuxer gives a fragment's tracks one after the other)
        for recorded in _segment_frames(root, segment, skip_before):
            track = recorded.frame.track
            dts = recorded.frame.decode_us
            if track in ended or dts < last_dts.get(track, -(1 << 62)):
                continue  # past the end, or overlapping what an earlier segment of the run gave
            if end_wall is not None and recorded.wall > end_wall:
                ended.add(track)
                if tracks <= ended:
                    break
                continue
            last_dts[track] = dts
            waiting[track].append(recorded)
            yield from _drain(waiting, tracks - ended)
        if tracks and tracks <= ended:
            yield from _drain(waiting, None)
            return
    yield from _drain(waiting, None)


def _drain(waiting: dict[int, deque[RecordedFrame]], tracks: set[int] | None) -> Iterator[RecordedFrame]:
    """Give the earliest waiting frames while every track of `tracks` has one waiting (None: all)."""
    while True:
        heads = [q for q in waiting.values() if q]
        if not heads:
            return
        if tracks is not None and any(not waiting[t] for t in tracks) \
                and sum(len(q) for q in waiting.values()) < MAX_WAITING:
            return
        yield min(heads, key=lambda q: q[0].frame.decode_us).popleft()


def _segment_frames(root: Path, segment: SegmentRow, skip_before: int | None) -> Iterator[RecordedFrame]:
    """One segment's frames in the demuxer's order, from the keyframe at media time `skip_before`."""
    path = root / segment.path
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        log.warning("recording %s not readable: %s", path, exc)
        return
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        video_config, length_size = None, 4
        if video is not None:
            codec = "h265" if video.codec_context.name == "hevc" else "h264"
            extradata = video.codec_context.extradata
            video_config = VideoConfig(codec, parameter_sets(codec, extradata))
            length_size = nal_length_size(codec, extradata)
        audio_config = None
        if audio is not None and audio.codec_context.name in AUDIO_CODECS:
            cc = audio.codec_context
            name = AUDIO_CODECS[cc.name]
            audio_config = AudioConfig(name, cc.sample_rate, cc.channels,
                                       bytes(cc.extradata or b"") if name == "aac" else b"",
                                       (cc.frame_size or 1024) if name == "aac" else 0)
        streams = [s for s in (video, audio) if s is not None and (s is video or audio_config is not None)]
        if not streams:
            return
        started = skip_before is None
        first_audio: tuple[av.Packet, int] | None = None  # held until the next tells where it begins
        segment_sample = round(segment.media_start_us * audio_config.sample_rate / 1e6) if audio_config else 0
        packets = container.demux(*streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:  # a torn tail (a crash): the segment ends at its last whole fragment
                log.warning("recording %s ends early: %s", path, exc)
                break
            if packet.size == 0 or packet.pts is None:
                continue
            if packet.stream is video:
                assert video_config is not None
                time_base = packet.time_base or video.time_base
                pts = segment.media_start_us + _us(packet.pts, time_base)
                dts = segment.media_start_us + _us(packet.dts if packet.dts is not None else packet.pts, time_base)
                if not started:  # the index's keyframe times are µs, the file's 1/90000 s: within a tick
                    if not packet.is_keyframe or pts < skip_before - KEYFRAME_SLACK_US:
                        continue
                    started = True
                data = bytes(packet)
                if length_size != 4:
                    data = _relength(data, length_size)
                media = MediaFrame(VIDEO, "video", video_config.codec, pts, _us(packet.duration or 0, time_base),
                                   packet.is_keyframe, data, video_config, dts_us=dts)
                media.wall_clock = segment.wall_at(pts)
                yield RecordedFrame(media, media.wall_clock, segment.id, segment.run)
                continue
            assert audio_config is not None
            samples = _audio_samples(audio_config, packet)
            sample = _samples(packet.pts, packet.time_base or audio.time_base, audio_config.sample_rate)
            length = _samples(packet.duration or 0, packet.time_base or audio.time_base, audio_config.sample_rate)
            if first_audio is None and sample == 0 and length > samples:
                first_audio = (packet, samples)
                continue
            if first_audio is not None:
                held, held_samples = first_audio
                first_audio = None
                recorded = _audio_frame(segment, audio_config, held, max(0, sample - held_samples),
                                        held_samples, segment_sample)
                if started and (skip_before is None or recorded.frame.pts_us + recorded.frame.duration_us
                                > skip_before):
                    yield recorded
            recorded = _audio_frame(segment, audio_config, packet, sample, samples, segment_sample)
            if not started and video is None:
                started = recorded.frame.pts_us + recorded.frame.duration_us > (skip_before or 0)
            if started and (skip_before is None or recorded.frame.pts_us + recorded.frame.duration_us > skip_before):
                yield recorded
        if first_audio is not None and started:
            held, held_samples = first_audio
            yield _audio_frame(segment, audio_config, held, 0, held_samples, segment_sample)


def _us(value: int, time_base: Fraction) -> int:
    return round(value * time_base * 1_000_000)


def _samples(value: int, time_base: Fraction, rate: int) -> int:
    return round(value * time_base * rate)


def _audio_samples(config: AudioConfig, packet: av.Packet) -> int:
    width = config.sample_bytes
    return packet.size // width if width else config.frame_samples or packet.duration or 1024


def _audio_frame(segment: SegmentRow, config: AudioConfig, packet: av.Packet, sample: int, samples: int,
                 segment_sample: int) -> RecordedFrame:
    """An audio packet at file sample `sample` (the audio track's time base is 1/rate)."""
    rate = config.sample_rate
    position = segment_sample + sample
    pts = round(position * 1_000_000 / rate)
    media = MediaFrame(AUDIO, "audio", config.codec, pts, round(samples * 1_000_000 / rate), True, bytes(packet),
                       config, dts_us=pts)
    media.wall_clock = segment.wall_at(pts)
    return RecordedFrame(media, media.wall_clock, segment.id, segment.run, position, samples)
