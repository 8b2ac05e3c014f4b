"""Timed frames to Matroska: video copied, audio as 16-bit PCM that follows the timeline.

Frames keep the sync engine's presentation times (video to Matroska's millisecond, with the
rounding error carried from frame to frame), so any player or analysis tool sees our alignment.
Video is copied as received, in decode order with its decode times: no encoder is ever opened.
The stream is declared from its own parameter sets (those of the SDP, or the first in-band set),
read by FFmpeg's own H.264/H.265 demuxer from the parameter sets and the first keyframe; FFmpeg's
muxer writes them as avcC/hvcC. A keyframe that brings other parameter sets (the camera changed
its resolution) carries them in band, as Matroska allows and every decoder follows. Audio is
decoded and written as PCM through a `TimelineResampler`, so its samples sit where the timeline
puts them even when the camera's audio clock is skewed (G.711 cannot go in MP4, and Matroska's
PCM is what every tool reads). The file starts at the first video keyframe's decode time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from opticlink.dsp.decode import AudioDecoder
from opticlink.dsp.timeline import TimelineResampler
from opticlink.media import AudioConfig, MediaFrame, VideoConfig, annexb, split_length_prefixed
from opticlink.record.segment import video_stream

log = logging.getLogger(__name__)
MS = Fraction(1, 1000)


@dataclass(slots=True)
class WriteSummary:
    path: str
    video_frames: int = 0
    audio_samples: int = 0
    dropped_before_keyframe: int = 0
    pts_fixes: int = 0
    parameter_set_changes: int = 0
    audio_inserted: int = 0
    audio_trimmed: int = 0
    duration_s: float = 0.0


class MatroskaWriter:
    """Writes frames of one video and one audio track (either may be absent) to `path`.

    Frames are held until both tracks have shown up (at most `wait_s` seconds of timeline), so the
    streams can be declared before the first packet.
    """

    def __init__(self, path: str | Path, *, wait_s: float = 2.0) -> None:
        self.path = str(path)
        self.wait_us = int(wait_s * 1e6)
        self.summary = WriteSummary(self.path)
        self._pending: list[MediaFrame] = []
        self._container: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio: av.audio.stream.AudioStream | None = None
        self._video_track: int | None = None
        self._audio_track: int | None = None
        self._decoder: AudioDecoder | None = None
        self._resampler: TimelineResampler | None = None
        self._start_us: int | None = None
        self._last_dts_ms = -1
        self._video_residual = 0.0
        self._dts_residual = 0.0
        self._parameter_sets: tuple[bytes, ...] = ()
        self._video_codec = ""
        self._samples_out = 0

    def write(self, frame: MediaFrame) -> None:
        if self._container is None:
            self._pending.append(frame)
            self._maybe_open()
            return
        self._write(frame)

    def close(self) -> WriteSummary:
        if self._container is None and self._pending:
            self._open()
        if self._container is not None:
            if self._resampler is not None and self._audio is not None:
                self._mux_audio(self._resampler.flush())
                for packet in self._audio.encode(None):
                    self._container.mux(packet)
                self.summary.audio_inserted = self._resampler.inserted
                self.summary.audio_trimmed = self._resampler.trimmed
            self._container.close()
        return self.summary

    def _maybe_open(self) -> None:
        kinds = {f.kind for f in self._pending}
        keyframe = any(f.kind == "video" and f.keyframe for f in self._pending)
        span = self._pending[-1].pts_us - self._pending[0].pts_us if self._pending else 0
        if (keyframe and "audio" in kinds) or span > self.wait_us:
            self._open()

    def _open(self) -> None:
        container = av.open(self.path, "w", format="matroska")
        keyframe = next((f for f in self._pending if f.kind == "video" and f.keyframe), None)
        if keyframe is not None and isinstance(keyframe.config, VideoConfig):
            stream = video_stream(container, keyframe)
            stream.time_base = MS
            self._video, self._video_track = stream, keyframe.track
            self._parameter_sets, self._video_codec = keyframe.config.parameter_sets, keyframe.config.codec
            self._start_us = keyframe.decode_us
        audio = next((f for f in self._pending if f.kind == "audio" and isinstance(f.config, AudioConfig)), None)
        if audio is not None:
            assert isinstance(audio.config, AudioConfig)
            self._decoder = AudioDecoder(audio.config)
            rate = audio.config.sample_rate
            stream = container.add_stream("pcm_s16le", rate=rate)
            stream.layout = "mono"
            self._audio, self._audio_track = stream, audio.track
            self._resampler = TimelineResampler(rate)
            if self._start_us is None:
                self._start_us = audio.pts_us
        self._container = container
        pending, self._pending = self._pending, []
        for frame in pending:
            self._write(frame)

    def _write(self, frame: MediaFrame) -> None:
        assert self._container is not None and self._start_us is not None
        if frame.decode_us < self._start_us:
            self.summary.dropped_before_keyframe += 1
            return
        if frame.track == self._video_track and self._video is not None:
            self._write_video(frame)
        elif frame.track == self._audio_track and self._decoder is not None and self._resampler is not None:
            pcm = self._decoder.decode(frame.data)
            if len(pcm):
                self._mux_audio(self._resampler.push(pcm, frame.pts_us - self._start_us))

    def _write_video(self, frame: MediaFrame) -> None:
        assert self._container is not None and self._start_us is not None
        config = frame.config
        if not isinstance(config, VideoConfig) or config.codec != self._video_codec:
            self.summary.dropped_before_keyframe += 1  # a codec this file was not declared with
            return
        nalus = split_length_prefixed(frame.data)
        if config.parameter_sets != self._parameter_sets and frame.keyframe and config.complete:
            self._parameter_sets = config.parameter_sets
            self.summary.parameter_set_changes += 1
            nalus = [*config.parameter_sets, *nalus]
        # Matroska counts in milliseconds. Rounding each frame alone would leave an error that
        # wanders slowly as the timeline drifts past the grid (a false skew of several ppm over
        # a minute); carrying the rounding error to the next frame keeps the average exact.
        exact = (frame.pts_us - self._start_us) / 1000 + self._video_residual
        pts = round(exact)
        self._video_residual = exact - pts
        exact = (frame.decode_us - self._start_us) / 1000 + self._dts_residual
        dts = round(exact)
        self._dts_residual = exact - dts
        dts = max(dts, self._last_dts_ms)  # decode times never go back (Matroska allows equal ones)
        if pts < dts:
            pts = dts
            self.summary.pts_fixes += 1
        self._last_dts_ms = dts
        packet = av.Packet(annexb(nalus))
        packet.stream = self._video
        packet.pts, packet.dts = pts, dts
        packet.time_base = MS
        packet.is_keyframe = frame.keyframe
        self._container.mux(packet)
        self.summary.video_frames += 1
        self.summary.duration_s = max(self.summary.duration_s, pts / 1000)

    def _mux_audio(self, samples: np.ndarray) -> None:
        if not len(samples) or self._audio is None or self._container is None:
            return
        assert self._resampler is not None
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)[None, :]
        audio = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        audio.sample_rate = self._resampler.rate
        origin = self._resampler.origin_us or 0
        audio.pts = self._samples_out + round(origin * self._resampler.rate / 1e6)
        audio.time_base = Fraction(1, self._resampler.rate)
        self._samples_out += pcm.shape[1]
        self.summary.audio_samples = self._samples_out
        end = audio.pts / self._resampler.rate + pcm.shape[1] / self._resampler.rate
        self.summary.duration_s = max(self.summary.duration_s, round(end, 3))
        for packet in self._audio.encode(audio):
            self._container.mux(packet)
