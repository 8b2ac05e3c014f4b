"""One recording segment: a fragmented QuickTime file, video copied and audio as the camera sent it.

Why this container: FFmpeg's `mov` muxer stores G.711 as it came (`ulaw`, `alaw` sample entries),
L16 (`twos`) and AAC, where MP4 refuses G.711 and Matroska's muxer refuses it too; `ffprobe`,
`ffmpeg`, VLC and mpv read it. Fragmented (an empty `moov`, then a `moof`+`mdat` pair per fragment of
at most `FRAGMENT_S`), a file cut by a crash is readable up to its last whole fragment, and
recovery only has to cut the torn tail off. Video is declared from the stream's own parameter sets
(FFmpeg's H.264/H.265 demuxer reads them with the first keyframe) and copied packet by packet: no
encoder is opened. Audio is declared the same way from FFmpeg's raw demuxers.

Output goes through `BatchedFile`: the muxer's writes are gathered in memory and reach the disk in
one `write` per `flush()` (the recorder flushes about once a GOP), not a syscall per packet.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from opticlink.media import AudioConfig, MediaFrame, VideoConfig, annexb, split_length_prefixed
from opticlink.rtp.formats.h264 import avc_decoder_configuration
from opticlink.rtp.formats.h265 import hevc_decoder_configuration

VIDEO_TIME_BASE = Fraction(1, 90_000)  # the video track's ticks
FRAGMENT_S = 0.5  # a fragment is cut at each keyframe and at least this often
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
RAW_AUDIO = {"pcmu": "mulaw", "pcma": "alaw", "l16": "s16be"}  # FFmpeg's raw demuxers of our codecs
AUDIO_CODECS = (*RAW_AUDIO, "aac")
SILENCE = {"pcmu": b"\xff", "pcma": b"\xd5", "l16": b"\x00\x00"}  # one sample of silence (per channel)
MAX_PENDING_BYTES = 64 << 20  # what `BatchedFile` gathers before it writes whatever the recorder says


class BatchedFile(io.RawIOBase):
    """A file the muxer writes to: bytes are kept until `flush()`, then written in one call.

    It counts the `write` calls that reached the operating system (`writes`)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        self._pending = bytearray()
        self._position = 0  # of the file, pending bytes included
        self.written = 0  # bytes on disk
        self.writes = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._pending += data
        self._position += len(data)
        if len(self._pending) > MAX_PENDING_BYTES:
            self.flush()
        return len(data)

    def flush(self) -> None:
        """Write what the muxer gave so far (one `write` call unless the kernel takes less)."""
        if self.closed or not self._pending:
            return
        start = self._position - len(self._pending)
        done = 0
        with memoryview(self._pending) as view:  # every view released before `clear()` resizes the buffer
            while done < len(view):
                with view[done:] as rest:
                    done += os.pwrite(self._fd, rest, start + done)
                self.writes += 1
        self.written = max(self.written, start + done)
        self._pending.clear()

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.flush()
        if whence == os.SEEK_SET:
            self._position = offset
        elif whence == os.SEEK_CUR:
            self._position += offset
        else:
            self._position = max(self.written, os.fstat(self._fd).st_size) + offset
        return self._position

    def close(self) -> None:
        if not self.closed:
            try:
                self.flush()
            finally:
                os.close(self._fd)
        super().close()

    def abandon(self) -> None:
        """Close without writing what is pending (the disk is full)."""
        self._pending.clear()
        self.close()


@dataclass(slots=True)
class SegmentStats:
    video_frames: int = 0
    audio_frames: int = 0
    silence_samples: int = 0  # inserted where the camera's audio had a hole
    keyframes_us: list[int] = field(default_factory=list)  # file time of each keyframe
    end_us: int = 0  # file time of the end of the last frame


class SegmentWriter:
    """Writes one segment: `video` and/or `audio` tracks, times in microseconds of file time.

    `keyframe` (a video frame, its config complete) declares the video track; `audio` the audio
    track. Frames of each track must come in decode order; the muxer interleaves them.
    """

    def __init__(self, path: Path, *, keyframe: MediaFrame | None, audio: AudioConfig | None) -> None:
        if keyframe is None and audio is None:
            raise ValueError("a segment needs a video keyframe or an audio track")
        self.path = path
        self.stats = SegmentStats()
        self.file = BatchedFile(path)
        try:
            self.container = av.open(self.file, "w", format="mov", options={
                "movflags": MOVFLAGS, "frag_duration": str(int(FRAGMENT_S * 1e6)),
                "video_track_timescale": str(VIDEO_TIME_BASE.denominator)})
            self.video_config: VideoConfig | None = None
            self._video: av.video.stream.VideoStream | None = None
            self._audio: av.audio.stream.AudioStream | None = None
            self.audio_config = audio
            if keyframe is not None:
                assert isinstance(keyframe.config, VideoConfig)
                self.video_config = keyframe.config
                self._video = video_stream(self.container, keyframe, length_prefixed=True)
            if audio is not None:
                self._audio = _audio_stream(self.container, audio)
                self._audio_time_base = Fraction(1, audio.sample_rate)  # made once: a Fraction costs microseconds
        except Exception:
            self.file.abandon()
            raise
        self._last_dts = -1

    @property
    def bytes(self) -> int:
        return self.file.written

    def write_video(self, frame: MediaFrame, pts_us: int, dts_us: int) -> None:
        """A video frame at file times `pts_us`/`dts_us`. Decode times go forward in the track's own
        ticks (1/90000 s): the muxer refuses a frame whose decode time is not after the last one's, and
        two frames a few microseconds apart (frames bunched by a stalled process) are one tick."""
        if self._video is None:
            return
        dts = max(_ticks(dts_us), self._last_dts + 1)
        pts = max(_ticks(pts_us), dts)
        self._last_dts = dts
        pts_us = max(pts_us, dts * 100 // 9)
        packet = av.Packet(frame.data)  # length-prefixed, as the stream's avcC/hvcC says
        packet.stream = self._video
        packet.time_base = VIDEO_TIME_BASE
        packet.pts, packet.dts = pts, dts
        packet.duration = _ticks(frame.duration_us or 0)
        packet.is_keyframe = frame.keyframe
        self.container.mux(packet)
        self.stats.video_frames += 1
        if frame.keyframe:
            self.stats.keyframes_us.append(pts_us)
        self.stats.end_us = max(self.stats.end_us, pts_us + (frame.duration_us or 0))

    def write_audio(self, data: bytes, sample: int, samples: int) -> None:
        """Audio as the camera sent it, starting at `sample` (in samples of file time), `samples` long.
        An empty frame is not written: the next one would start at the same time, which the muxer refuses."""
        if self._audio is None or self.audio_config is None or samples <= 0:
            return
        packet = av.Packet(data)
        packet.stream = self._audio
        rate = self.audio_config.sample_rate
        packet.time_base = self._audio_time_base
        packet.pts = packet.dts = sample
        packet.duration = samples
        self.container.mux(packet)
        self.stats.audio_frames += 1
        self.stats.end_us = max(self.stats.end_us, (sample + samples) * 1_000_000 // rate)

    def write_silence(self, sample: int, samples: int) -> bool:
        """Fill a hole in the camera's G.711 or L16 audio (False for a codec it cannot fill)."""
        config = self.audio_config
        if config is None or config.codec not in SILENCE or samples <= 0:
            return False
        self.write_audio(SILENCE[config.codec] * (samples * config.channels), sample, samples)
        self.stats.silence_samples += samples
        return True

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        try:
            self.container.close()
        finally:
            self.file.close()

    def abandon(self) -> None:
        """Stop at once, writing nothing more (the disk is full): the file ends at its last flush."""
        self.file.abandon()
        with contextlib.suppress(Exception):  # the muxer's trailer has nowhere to go
            self.container.close()


def _ticks(us: int) -> int:
    """Microseconds in the video track's ticks (1/90000 s), to the nearest."""
    return (us * 9 + 50) // 100


def video_stream(container: av.container.OutputContainer, keyframe: MediaFrame, *,
                 length_prefixed: bool = False) -> av.video.stream.VideoStream:
    """A stream-copy video stream declared from the stream's own parameter sets and first keyframe.

    `length_prefixed`: its extradata is an avcC/hvcC record, so the muxer takes our frames' 4-byte
    length-prefixed NAL units as they are (else Annex B, which the muxer converts back itself)."""
    config = keyframe.config
    assert isinstance(config, VideoConfig)
    codec = config.codec
    data = annexb(config.parameter_sets) + annexb(split_length_prefixed(keyframe.data))
    with av.open(io.BytesIO(data), "r", format="h264" if codec == "h264" else "hevc") as probe:
        if not probe.streams.video or not probe.streams.video[0].codec_context.width:
            raise ValueError(f"the first {codec} keyframe does not say its picture size")
        stream = container.add_stream_from_template(probe.streams.video[0])
    if length_prefixed:
        if codec == "h264":
            stream.codec_context.extradata = avc_decoder_configuration(*config.parameter_sets[:2])
        else:
            stream.codec_context.extradata = hevc_decoder_configuration(*config.parameter_sets[:3])
    return stream


def _audio_stream(container: av.container.OutputContainer, config: AudioConfig) -> av.audio.stream.AudioStream:
    """An audio stream declared as the camera's codec, rate and channels (no encoder)."""
    layout = "mono" if config.channels == 1 else "stereo" if config.channels == 2 else f"{config.channels}c"
    if config.codec in RAW_AUDIO:
        width = 2 if config.codec == "l16" else 1
        raw = bytes(width * config.channels * 160)
        options = {"sample_rate": str(config.sample_rate), "ch_layout": layout}
        with av.open(io.BytesIO(raw), "r", format=RAW_AUDIO[config.codec], options=options) as probe:
            return container.add_stream_from_template(probe.streams.audio[0])
    if config.codec == "aac":
        if not config.extra:
            raise ValueError("AAC without its AudioSpecificConfig cannot be recorded")
        with av.open(io.BytesIO(_adts_probe(config.extra)), "r", format="aac") as probe:
            stream = container.add_stream_from_template(probe.streams.audio[0])
        stream.codec_context.extradata = config.extra
        stream.codec_context.sample_rate = config.sample_rate  # empty ADTS frames do not tell the demuxer
        return stream
    raise ValueError(f"cannot record audio in {config.codec!r}")


def _adts_probe(asc: bytes) -> bytes:
    """Two empty ADTS frames carrying an AudioSpecificConfig's object type, rate and channels."""
    if len(asc) < 2:
        raise ValueError("AudioSpecificConfig too short")
    obj = asc[0] >> 3
    rate_index = ((asc[0] & 7) << 1) | (asc[1] >> 7)
    channels = (asc[1] >> 3) & 15
    if not 1 <= obj <= 4 or rate_index > 12:
        raise ValueError("an AAC AudioSpecificConfig this recorder cannot declare")
    payload = b"\x00" * 8
    n = len(payload) + 7
    header = bytes([0xFF, 0xF1, ((obj - 1) << 6) | (rate_index << 2) | (channels >> 2),
                    ((channels & 3) << 6) | (n >> 11), (n >> 3) & 0xFF, ((n & 7) << 5) | 0x1F, 0xFC])
    return (header + payload) * 2
