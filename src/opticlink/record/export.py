"""Exporting a camera's recordings between two wall times to one file any player opens.

The container follows the file name:

- `.mkv`: video copied as recorded. Audio: AAC copied; G.711 and L16 written as 16-bit PCM, because
  FFmpeg's Matroska muxer refuses G.711 (`pcm_mulaw`, `pcm_alaw`). Decoding G.711 (or L16) to 16-bit
  PCM is exact: every code maps to one 16-bit value, nothing is lost, only the file is larger.
- `.mov`: everything copied as recorded (G.711 too): the recording's own container.
- `.mp4`: for a browser's `<video>`: video copied, audio decoded, resampled (soxr) to an AAC rate
  and encoded to AAC; the `moov` at the front (`+faststart`). AAC's encoder priming is negative
  time FFmpeg hides with an edit list, so the sound starts where it was recorded.

Times: output time 0 is the wall time of the last video keyframe at or before `start_wall` (where
the first picture decodes; `ExportSummary.start_wall` says it). Within a run, media time carries on
across segments; the audio is placed sample by sample on the run's audio clock (the recording's media
clock), so A/V stays as recorded. Between runs the output jumps over the gap's wall length, so the
file's clock matches the timeline: the last picture stays up, and the sound is silence (PCM and AAC)
or absent (AAC copied). A segment whose picture size changed gets its parameter sets in band at its
keyframes (the file's stream is declared from the first segment's). Memory stays bounded: frames
stream from the reader to the muxer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soxr

from opticlink.dsp.g711 import decode_table
from opticlink.media import AudioConfig, VideoConfig, length_prefixed
from opticlink.record.reader import KEYFRAME_SLACK_US, RecordedFrame, parameter_sets, read_frames, start_point
from opticlink.record.segment import SILENCE
from opticlink.store.recordings import SegmentRow

US = Fraction(1, 1_000_000)
FORMATS = ("mkv", "mp4", "mov")
AAC_RATES = (16000, 22050, 24000, 32000, 44100, 48000)  # 16 kHz and up: every browser's AAC decoder takes them
AAC_BITRATE = 64_000
MAX_FILL_S = 1.0  # silence is written in chunks of at most this much
PROGRESS_STEP = 0.01


class NothingRecorded(LookupError):
    """No recording of the camera in the range asked for."""


@dataclass(slots=True)
class ExportSummary:
    path: Path
    format: str  # mkv, mp4, mov
    start_wall: float  # wall time of output time 0 (the keyframe at or before the start asked for)
    end_wall: float  # wall time of the last frame's end
    duration_s: float
    video_frames: int = 0
    audio_samples: int = 0  # written, at the output's audio rate
    audio: str | None = None  # what became of the audio: "pcmu copied", "pcm_s16le from pcmu", "aac from pcmu"
    runs: int = 0
    gap_s: float = 0.0  # time between runs kept in the file
    segments: int = 0
    skipped_audio: int = 0  # frames of another audio codec than the export's (the camera changed its audio)


def export(root: Path, segments: list[SegmentRow], start_wall: float, end_wall: float, out: Path, *,
           on_progress: Callable[[float], None] | None = None) -> ExportSummary:
    """Write the recordings of `segments` (one camera's) from `start_wall` to `end_wall` to `out`
    (.mkv, .mp4 or .mov). Raises NothingRecorded when no frame lies in the range, ValueError for
    another file type. A failed export leaves no file behind."""
    kind = out.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"export writes .mkv, .mp4 or .mov, not {out.suffix or 'no suffix'!r}")
    if end_wall <= start_wall:
        raise ValueError("the end must come after the start")
    chosen = sorted((s for s in segments if s.start_wall <= end_wall and s.end_wall >= start_wall),
                    key=lambda s: (s.start_wall, s.id))
    if not chosen:
        raise NothingRecorded("nothing was recorded in that range")
    try:
        with _Exporter(root, chosen, start_wall, end_wall, out, kind, on_progress) as exporter:
            summary = exporter.run()
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink()
        raise
    return summary


class _Exporter:
    def __init__(self, root: Path, segments: list[SegmentRow], start_wall: float, end_wall: float, out: Path,
                 kind: str, on_progress: Callable[[float], None] | None) -> None:
        self.root, self.segments, self.kind, self.out = root, segments, kind, out
        self.end_wall = end_wall
        self.on_progress = on_progress
        index, media = start_point(segments, start_wall)
        first = segments[index]
        self.t0 = first.wall_at(media)  # the wall time of output time 0
        self.requested_start = start_wall
        self.anchors: dict[int, tuple[int, int]] = {first.run: (media, 0)}  # run: (media_us, output_us) of a point
        self.summary = ExportSummary(out, kind, self.t0, self.t0, 0.0)
        self.container: av.container.OutputContainer | None = None
        self.video: av.video.stream.VideoStream | None = None
        self.video_parameter_sets: tuple[bytes, ...] = ()  # the output stream's (from its first segment)
        self.audio: av.audio.stream.AudioStream | None = None
        self.audio_config: AudioConfig | None = None
        self.audio_mode = ""  # copy, pcm, aac
        self.audio_next = 0  # the next output sample (at the recording's rate)
        self.out_samples = 0  # samples given to the encoder (at its rate)
        self.resampler: soxr.ResampleStream | None = None
        self.aac_decoder: av.AudioCodecContext | None = None
        self.last_out_us = 0
        self.last_run: int | None = None
        self.seen_segments: set[int] = set()
        self.progress = -1.0

    def __enter__(self) -> _Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()

    # the pass ------------------------------------------------------------------------------------

    def run(self) -> ExportSummary:
        self._open()
        for recorded in read_frames(self.root, self.segments, self.requested_start, self.end_wall):
            self._frame(recorded)
        if self.summary.video_frames == 0 and self.summary.audio_samples == 0 and self.audio_next == 0:
            raise NothingRecorded("nothing was recorded in that range")
        self._finish_audio()
        assert self.container is not None
        self.container.close()
        self.container = None
        self.summary.end_wall = self.t0 + self.summary.duration_s
        if self.on_progress is not None:
            self.on_progress(1.0)
        return self.summary

    def _open(self) -> None:
        options = {"movflags": "+faststart", "video_track_timescale": "90000"} if self.kind != "mkv" else {}
        container = av.open(str(self.out), "w", format={"mkv": "matroska"}.get(self.kind, self.kind),
                            options=options)
        self.container = container
        container.metadata["creation_time"] = datetime.fromtimestamp(self.t0, UTC).isoformat()
        video = next((s for s in self.segments if s.video_codec), None)
        audio = next((s for s in self.segments if s.audio_codec), None)
        if video is not None:
            with av.open(str(self.root / video.path)) as source:
                if source.streams.video:
                    template = source.streams.video[0]
                    self.video = container.add_stream_from_template(template)
                    codec = "h265" if template.codec_context.name == "hevc" else "h264"
                    self.video_parameter_sets = parameter_sets(codec, template.codec_context.extradata)
        if audio is not None:
            self._open_audio(container, audio)

    def _open_audio(self, container: av.container.OutputContainer, segment: SegmentRow) -> None:
        with av.open(str(self.root / segment.path)) as source:
            if not source.streams.audio:
                return
            template = source.streams.audio[0]
            cc = template.codec_context
            codec = {"pcm_mulaw": "pcmu", "pcm_alaw": "pcma", "pcm_s16be": "l16", "aac": "aac"}.get(cc.name)
            if codec is None:
                return
            self.audio_config = AudioConfig(codec, cc.sample_rate, cc.channels,
                                            bytes(cc.extradata or b"") if codec == "aac" else b"")
            layout = "mono" if cc.channels == 1 else "stereo"
            if self.kind == "mov" or (self.kind == "mkv" and codec == "aac"):
                self.audio_mode = "copy"
                self.audio = container.add_stream_from_template(template)
                self.summary.audio = f"{codec} copied"
            elif self.kind == "mkv":
                self.audio_mode = "pcm"
                self.audio = container.add_stream("pcm_s16le", rate=cc.sample_rate, layout=layout)
                self.summary.audio = f"pcm_s16le from {codec}"
            else:
                self.audio_mode = "aac"
                rate = next((r for r in AAC_RATES if r >= cc.sample_rate), AAC_RATES[-1])
                self.audio = container.add_stream("aac", rate=rate, layout=layout)
                self.audio.codec_context.bit_rate = AAC_BITRATE
                if rate != cc.sample_rate:
                    self.resampler = soxr.ResampleStream(cc.sample_rate, rate, cc.channels, dtype="int16",
                                                         quality="HQ")
                self.summary.audio = f"aac from {codec}"
            if codec == "aac" and self.audio_mode != "copy":
                decoder = av.CodecContext.create("aac", "r")
                decoder.sample_rate = cc.sample_rate
                decoder.layout = layout
                if cc.extradata:
                    decoder.extradata = bytes(cc.extradata)
                self.aac_decoder = decoder

    def _frame(self, recorded: RecordedFrame) -> None:
        frame = recorded.frame
        if recorded.segment not in self.seen_segments:
            self.seen_segments.add(recorded.segment)
            self.summary.segments += 1
        if recorded.run != self.last_run:
            self._enter_run(recorded)
        media_us, out_us = self.anchors[recorded.run]
        if frame.kind == "video":
            if self.video is not None:
                self._video(recorded, frame.pts_us - media_us + out_us, frame.decode_us - media_us + out_us)
        elif self.audio is not None and recorded.sample is not None:
            self._audio(recorded, media_us, out_us)
        if self.on_progress is not None:
            span = max(1e-6, self.end_wall - self.t0)
            share = min(1.0, max(0.0, (recorded.wall - self.t0) / span))
            if share - self.progress >= PROGRESS_STEP:
                self.progress = share
                self.on_progress(share)

    def _enter_run(self, recorded: RecordedFrame) -> None:
        """A run begins: its media time is placed at its wall time (after the gap), never before what
        the file already holds."""
        self.summary.runs += 1
        if recorded.run not in self.anchors:
            segment = next(s for s in self.segments if s.id == recorded.segment)
            out_us = max(round((segment.start_wall - self.t0) * 1e6), self.last_out_us)
            self.summary.gap_s += max(0.0, (out_us - self.last_out_us) / 1e6)
            self.anchors[recorded.run] = (segment.media_start_us, out_us)
        self.last_run = recorded.run

    # video ---------------------------------------------------------------------------------------

    def _video(self, recorded: RecordedFrame, pts: int, dts: int) -> None:
        assert self.container is not None and self.video is not None
        frame = recorded.frame
        if -KEYFRAME_SLACK_US < pts < 0:  # the first keyframe, a tick before the index's time of it
            pts, dts = 0, dts - pts
        data = frame.data
        config = frame.config
        if frame.keyframe and isinstance(config, VideoConfig) and config.parameter_sets != self.video_parameter_sets:
            data = length_prefixed(list(config.parameter_sets)) + data  # a new picture size: its parameter sets in band
        packet = av.Packet(data)
        packet.stream = self.video
        packet.time_base = US
        packet.pts, packet.dts = pts, dts
        packet.duration = frame.duration_us
        packet.is_keyframe = frame.keyframe
        self.container.mux(packet)
        self.summary.video_frames += 1
        self._extend(pts + frame.duration_us)

    def _extend(self, end_us: int) -> None:
        self.last_out_us = max(self.last_out_us, end_us)
        self.summary.duration_s = max(self.summary.duration_s, end_us / 1e6)

    # audio ---------------------------------------------------------------------------------------

    def _audio(self, recorded: RecordedFrame, media_us: int, out_us: int) -> None:
        config = self.audio_config
        frame = recorded.frame
        assert config is not None and isinstance(frame.config, AudioConfig) and recorded.sample is not None
        if frame.config.codec != config.codec or frame.config.sample_rate != config.sample_rate:
            self.summary.skipped_audio += 1
            return
        rate = config.sample_rate
        position = recorded.sample - round(media_us * rate / 1e6) + round(out_us * rate / 1e6)
        if self.audio_mode == "copy":
            self._copy_audio(recorded, position)
            return
        pcm = self._decode(frame.data, config)
        if position < self.audio_next:  # before output time 0, or overlapping what was written
            pcm = pcm[self.audio_next - position:]
            position = self.audio_next
        if len(pcm) == 0:
            return
        self._fill(position)
        self._pcm(pcm)

    def _copy_audio(self, recorded: RecordedFrame, position: int) -> None:
        assert self.container is not None and self.audio is not None and self.audio_config is not None
        config = self.audio_config
        data, samples = recorded.frame.data, recorded.samples
        width = config.sample_bytes
        if position < self.audio_next:
            if not width:
                return  # an AAC frame cannot be cut: it starts before output time 0
            cut = self.audio_next - position
            if cut >= samples:
                return
            data, samples, position = data[cut * width:], samples - cut, self.audio_next
        if position > self.audio_next and width:
            gap = position - self.audio_next
            silence_chunk = round(MAX_FILL_S * config.sample_rate)
            while gap > 0:
                n = min(gap, silence_chunk)
                self._mux_audio(SILENCE[config.codec] * (n * config.channels), self.audio_next, n)
                gap -= n
        self._mux_audio(data, position, samples)

    def _mux_audio(self, data: bytes, position: int, samples: int) -> None:
        assert self.container is not None and self.audio is not None and self.audio_config is not None
        packet = av.Packet(data)
        packet.stream = self.audio
        packet.time_base = Fraction(1, self.audio_config.sample_rate)
        packet.pts = packet.dts = position
        packet.duration = samples
        self.container.mux(packet)
        self.audio_next = position + samples
        self.summary.audio_samples += samples
        self._extend(round(self.audio_next * 1e6 / self.audio_config.sample_rate))

    def _decode(self, data: bytes, config: AudioConfig) -> np.ndarray:
        """16-bit samples, one row per sample, one column per channel."""
        channels = max(1, config.channels)
        if config.codec in ("pcmu", "pcma"):
            pcm = (decode_table(config.codec)[np.frombuffer(data, np.uint8)] * 32768.0).astype(np.int16)
            return pcm.reshape(-1, channels)
        if config.codec == "l16":
            return np.frombuffer(data, ">i2").astype(np.int16).reshape(-1, channels)
        assert self.aac_decoder is not None
        chunks = []
        for decoded in self.aac_decoder.decode(av.Packet(data)):
            samples = decoded.to_ndarray()
            if decoded.format.is_planar:
                samples = samples.T
            else:
                samples = samples.reshape(-1, channels)
            if samples.dtype.kind == "f":
                samples = np.clip(np.round(samples * 32768.0), -32768, 32767)
            chunks.append(samples.astype(np.int16))
        return np.concatenate(chunks) if chunks else np.zeros((0, channels), np.int16)

    def _fill(self, position: int) -> None:
        """Silence up to `position` (a hole between runs), in bounded chunks."""
        assert self.audio_config is not None
        chunk = round(MAX_FILL_S * self.audio_config.sample_rate)
        while self.audio_next < position:
            n = min(chunk, position - self.audio_next)
            self._pcm(np.zeros((n, max(1, self.audio_config.channels)), np.int16))

    def _pcm(self, pcm: np.ndarray) -> None:
        """Samples at the recording's rate, following the last ones written."""
        assert self.audio_config is not None
        self.audio_next += len(pcm)
        self.summary.audio_samples += len(pcm)
        self._extend(round(self.audio_next * 1e6 / self.audio_config.sample_rate))
        if self.resampler is not None:
            pcm = self.resampler.resample_chunk(np.ascontiguousarray(pcm))
        self._encode(pcm)

    def _encode(self, pcm: np.ndarray | None) -> None:
        assert self.container is not None and self.audio is not None
        stream = self.audio
        if pcm is not None and len(pcm):
            layout = "mono" if pcm.shape[1] == 1 else "stereo"
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout=layout)
            frame.sample_rate = stream.codec_context.sample_rate
            frame.pts = self.out_samples
            frame.time_base = Fraction(1, frame.sample_rate)
            self.out_samples += len(pcm)
            packets = stream.encode(frame)
        elif pcm is None:
            packets = stream.encode(None)
        else:
            return
        for packet in packets:
            self.container.mux(packet)

    def _finish_audio(self) -> None:
        if self.audio is None or self.audio_mode == "copy":
            return
        if self.resampler is not None:
            assert self.audio_config is not None
            tail = self.resampler.resample_chunk(np.zeros((0, max(1, self.audio_config.channels)), np.int16),
                                                 last=True)
            self._encode(tail)
        self._encode(None)


def parse_time(text: str) -> float:
    """A time given on the command line or in a query: Unix seconds, or ISO 8601 (with a zone, else
    local time)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (ISO 8601, e.g. 2024-05-01T12:00:00Z, or Unix seconds)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.timestamp()
