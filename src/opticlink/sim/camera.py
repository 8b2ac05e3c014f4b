"""A simulated camera, sans-IO: RTP and RTCP as its clocks would stamp them, and the truth.

The camera captures one world. Its video clock and audio clock run at their own rates
(`video_skew_ppm`, `audio_skew_ppm` against true time), its wall clock (the NTP time in Sender
Reports) at a third. Content follows the world, not the clocks: a flash and its beep happen at
the same true instant however the clocks drift, exactly as with a real camera. `advance(now)`
returns everything the camera sends up to true time `now` (seconds); `capture_time()` tells the
true capture time of any unit it sent, which is the ground truth the sync engine is scored on.

Video with B-frames goes out in decoding order, each frame stamped with its presentation time
(its capture time), so timestamps go back and forth as a real camera's do; sending lags capture
by the clip's reorder delay.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from opticlink.dsp.g711 import decode_table, from_float
from opticlink.rtp.formats.aac import AacPacketizer, aac_fmtp
from opticlink.rtp.formats.base import RtpFormat
from opticlink.rtp.formats.h264 import H264Packetizer
from opticlink.rtp.formats.h265 import H265Packetizer
from opticlink.rtp.packet import build_rtp
from opticlink.rtp.rtcp import (
    NTP_EPOCH_OFFSET,
    SenderReport,
    SourceDescription,
    seconds_to_ntp,
    serialize_rtcp,
)
from opticlink.sim.echo import EchoPath
from opticlink.sim.faults import Faults
from opticlink.sim.media import EncodedAudio, VideoClip, is_parameter_set

VIDEO_RATE = 90_000
ENCODE_DELAY = 0.012  # seconds from capture to the first packet of a video frame
FIRST_SR_S = 0.05  # seconds from the start to the first Sender Reports, unless a fault delays them
G711_PAYLOAD_TYPES = {"pcmu": 0, "pcma": 8}
VIDEO_PAYLOAD_TYPE = 96
AUDIO_PAYLOAD_TYPE = 97  # AAC
# where the camera puts its parameter sets: in band (before every keyframe), in the SDP's sprop, or both
ParameterSetMode = Literal["inband", "sdp", "both"]
PARAMETER_SET_MODES: tuple[str, ...] = ("inband", "sdp", "both")


def video_format(video: VideoClip, parameter_sets: ParameterSetMode = "both") -> RtpFormat:
    """The video track's rtpmap and fmtp; sprop parameter sets unless they are in band only."""
    sprop = parameter_sets != "inband"
    b64 = [base64.b64encode(nal).decode() for nal in video.parameter_sets]
    if video.codec == "h265":
        fmtp = dict(zip(("sprop-vps", "sprop-sps", "sprop-pps"), b64, strict=True)) if sprop else {}
        return RtpFormat(VIDEO_PAYLOAD_TYPE, "H265", VIDEO_RATE, 1, fmtp)
    fmtp = {"packetization-mode": "1", "profile-level-id": video.sps[1:4].hex()}
    if sprop:
        fmtp["sprop-parameter-sets"] = ",".join(b64)
    return RtpFormat(VIDEO_PAYLOAD_TYPE, "H264", VIDEO_RATE, 1, fmtp)


@dataclass(slots=True)
class Emission:
    """Something the camera sends: at true time `send_time`, on `track`, RTP or RTCP."""

    send_time: float
    track: int
    rtcp: bool
    data: bytes


@dataclass(slots=True)
class _Segment:
    """A stretch of one track's clock: from true time `t0` the timestamp counts from `ts0`."""

    ssrc: int
    ts0: int
    t0: float
    rate: float  # actual ticks per true second
    offset: float  # true capture minus clock time (audio capture offset)
    end: float | None = None

    def time_at(self, ts: int) -> float:
        return self.t0 + (ts - self.ts0) / self.rate

    def ts_at(self, t: float) -> int:
        return self.ts0 + round((t - self.t0) * self.rate)


@dataclass(slots=True)
class _Track:
    kind: str
    format: RtpFormat
    nominal_rate: int
    skew_ppm: float
    offset: float
    segments: list[_Segment] = field(default_factory=list)
    sequence: int = 0
    packets: int = 0
    octets: int = 0
    units: int = 0  # frames or audio packets sent in the current segment

    @property
    def segment(self) -> _Segment:
        return self.segments[-1]


class CameraModel:
    """One camera's output on true time. `start` is the true time it starts capturing."""

    def __init__(self, video: VideoClip | None, audio: EncodedAudio | None, faults: Faults | None = None, *,
                 start: float = 0.0, wall_start: float = 1_800_000_000.0, audio_packet_ms: int = 20,
                 cname: str = "camera@opticlink.sim", video_ts0: int | None = None,
                 audio_ts0: int | None = None, content: bool = True, echo: EchoPath | None = None,
                 parameter_sets: ParameterSetMode = "both") -> None:
        if parameter_sets not in PARAMETER_SET_MODES:
            raise ValueError(f"parameter_sets must be {'/'.join(PARAMETER_SET_MODES)}, not {parameter_sets!r}")
        self.video, self.audio = video, audio
        self.parameter_sets = parameter_sets
        self.faults = faults or Faults()
        self.start, self.wall_start = start, wall_start
        self.content = content  # False: audio payloads are not resampled to follow the world (fast replays)
        self.echo = echo  # the speaker heard by the microphone (G.711 cameras)
        self.cname = cname
        self._rng = random.Random(self.faults.seed)
        self.tracks: list[_Track] = []
        self._world_epoch = start
        self._clip_frame = 0  # frames of the clip sent, in decoding order
        self._video_base = 0  # presentation index (in the clip's frames) at the video segment's ts0
        self._video_lead = 0  # frames sent but not yet presented when the segment began (a jump mid-GOP)
        self._reorder = 0
        f = self.faults
        if video is not None:
            self.tracks.append(_Track("video", video_format(video, parameter_sets), VIDEO_RATE,
                                      f.video_skew_ppm, 0.0))
            self.frame_ticks = round(VIDEO_RATE / float(video.fps))
            self._presentation = video.presentation
            self._reorder = video.reorder_delay
            # lowest presentation index from each frame on to the loop's end (GOPs are closed)
            self._unsent_min = list(self._presentation)
            for i in range(len(self._unsent_min) - 2, -1, -1):
                self._unsent_min[i] = min(self._unsent_min[i], self._unsent_min[i + 1])
        if audio is not None:
            if audio.codec == "aac":
                fmt = RtpFormat(AUDIO_PAYLOAD_TYPE, "MPEG4-GENERIC", audio.sample_rate, 1, aac_fmtp(audio.config))
                self.audio_samples = audio.frame_samples
            else:
                fmt = RtpFormat(G711_PAYLOAD_TYPES[audio.codec], audio.codec.upper(), audio.sample_rate)
                self.audio_samples = audio.sample_rate * audio_packet_ms // 1000
                self._g711 = np.frombuffer(audio.data, np.uint8)
            self.tracks.append(_Track("audio", fmt, audio.sample_rate, f.audio_skew_ppm, f.av_offset_ms / 1000))
        for _i, track in enumerate(self.tracks):
            ts0 = (video_ts0 if track.kind == "video" else audio_ts0)
            self._new_segment(track, start, ts0=ts0)
            track.sequence = self._rng.randrange(1 << 16)
        self._video_packetizer = self._new_video_packetizer() if video is not None else None
        self._aac = AacPacketizer(AUDIO_PAYLOAD_TYPE, 0) if audio is not None and audio.codec == "aac" else None
        # each track's next Sender Report: both at once unless a fault delays one track's first
        delays = {"video": f.video_sr_delay_s, "audio": f.audio_sr_delay_s}
        self._next_sr = [start + (delays[t.kind] if delays[t.kind] > 0 else FIRST_SR_S) for t in self.tracks]
        self._frozen_ntp: float | None = None
        self._ntp_jump = 0.0
        self._reboot_done = False
        self._jump_done = False
        self.now = start  # true time the model has been advanced to

    # Clocks and truth --------------------------------------------------------------------------

    def _new_segment(self, track: _Track, t0: float, *, ts0: int | None = None, ssrc: int | None = None) -> None:
        if track.segments:
            track.segments[-1].end = t0
        rate = track.nominal_rate * (1 + track.skew_ppm * 1e-6)
        ts0 = self._rng.randrange(1 << 32) if ts0 is None else ts0
        ssrc = self._rng.randrange(1, 1 << 32) if ssrc is None else ssrc
        track.segments.append(_Segment(ssrc, ts0, t0, rate, track.offset))
        track.units = 0
        if track.kind == "video" and self.video is not None:
            # the segment's ts0 stamps the earliest frame still to be sent, so no stamp precedes it
            n = len(self._presentation)
            self._video_base = self._clip_frame // n * n + self._unsent_min[self._clip_frame % n]
            self._video_lead = self._clip_frame - self._video_base

    def _new_video_packetizer(self) -> H264Packetizer | H265Packetizer:
        assert self.video is not None
        packetizer = H265Packetizer if self.video.codec == "h265" else H264Packetizer
        return packetizer(VIDEO_PAYLOAD_TYPE, self.tracks[0].segment.ssrc, self.tracks[0].sequence)

    def wall_clock(self, t: float) -> float:
        """The camera's wall clock (Unix seconds) at true time `t`."""
        return self.wall_start + (t - self.start) * (1 + self.faults.wall_skew_ppm * 1e-6)

    def world_time(self, t: float) -> float:
        """Content time of the world at true time `t` (the clip position both tracks show)."""
        return (t - self._world_epoch) * (1 + self.faults.video_skew_ppm * 1e-6)

    def capture_time(self, track: int, ssrc: int, timestamp: int) -> float | None:
        """True capture time of the unit `track` sent with this SSRC and 32-bit timestamp."""
        # B-frames sent before a segment ended may be stamped up to the reorder delay after its end
        margin = self._reorder * self.frame_ticks if self.tracks[track].kind == "video" else 0
        for segment in reversed(self.tracks[track].segments):
            if segment.ssrc != ssrc:
                continue
            delta = (timestamp - segment.ts0) & 0xFFFFFFFF
            span = ((segment.end if segment.end is not None else self.now + 1.0) - segment.t0) * segment.rate + 1
            span += margin
            if delta <= span:
                return segment.t0 + delta / segment.rate + segment.offset
        return None

    def ssrc(self, track: int) -> int:
        return self.tracks[track].segment.ssrc

    # Emitting ---------------------------------------------------------------------------------

    def _next_video(self) -> float:
        track = self.tracks[0]
        seg = track.segment
        sending = track.units + self._video_lead + self._reorder  # in frame intervals after ts0
        return seg.time_at(seg.ts0 + sending * self.frame_ticks) + ENCODE_DELAY

    def _next_audio(self) -> float:
        track = self.tracks[-1]
        seg = track.segment
        return seg.time_at(seg.ts0 + (track.units + 1) * self.audio_samples) + seg.offset + 0.001

    def _next_event(self) -> tuple[float, str]:
        f = self.faults
        candidates: list[tuple[float, str]] = []
        if self.video is not None:
            candidates.append((self._next_video(), "video"))
        if self.audio is not None:
            candidates.append((self._next_audio(), "audio"))
        candidates.append((min(self._next_sr, default=float("inf")), "sr"))
        if f.reboot_at_s is not None and not self._reboot_done:
            candidates.append((self.start + f.reboot_at_s, "reboot"))
        if f.timestamp_jump_at_s is not None and not self._jump_done:
            candidates.append((self.start + f.timestamp_jump_at_s, "jump"))
        return min(candidates)

    def next_send(self) -> float:
        """True time of the camera's next emission (a real-time server wakes up for it)."""
        return self._next_event()[0]

    def advance(self, now: float) -> list[Emission]:
        """Everything sent up to true time `now`, in sending order."""
        out: list[Emission] = []
        f = self.faults
        self.now = max(self.now, now)
        while True:
            when, what = self._next_event()
            if when > now:
                return out
            stalled = f.stall_at_s is not None and when >= self.start + f.stall_at_s
            if what == "video":
                packets = self._video_frame()
                if not stalled:
                    out.extend(Emission(when, 0, False, p) for p in packets)
            elif what == "audio":
                packet = self._audio_packet()
                if not stalled:
                    out.append(Emission(when, len(self.tracks) - 1, False, packet))
            elif what == "sr":
                due = [i for i, t in enumerate(self._next_sr) if t <= when]
                for i in due:
                    self._next_sr[i] = when + f.sr_interval_s
                if not stalled:
                    out.extend(self._sender_reports(when, due))
            elif what == "reboot":
                self._reboot_done = True
                self._world_epoch = when
                self._clip_frame = 0
                for track in self.tracks:
                    self._new_segment(track, when)
                    track.sequence = self._rng.randrange(1 << 16)
                    track.packets = track.octets = 0
                if self._video_packetizer is not None:
                    self._video_packetizer = self._new_video_packetizer()
            elif what == "jump":
                self._jump_done = True
                for track in self.tracks:
                    self._new_segment(track, when, ssrc=track.segment.ssrc)

    def _video_frame(self) -> list[bytes]:
        track = self.tracks[0]
        seg = track.segment
        assert self.video is not None and self._video_packetizer is not None
        n = len(self.video.frames)
        index = self._clip_frame % n
        presentation = self._clip_frame // n * n + self._presentation[index] - self._video_base
        ts = (seg.ts0 + presentation * self.frame_ticks) & 0xFFFFFFFF
        nalus = self.video.frames[index]
        if self.parameter_sets == "sdp":
            codec = self.video.codec
            nalus = [nal for nal in nalus if not is_parameter_set(nal, codec)]
        self._clip_frame += 1
        track.units += 1
        self._video_packetizer.ssrc = seg.ssrc
        packets = self._video_packetizer.packetize(nalus, ts)
        track.packets += len(packets)
        track.octets += sum(len(p) - 12 for p in packets)
        return packets

    def _audio_packet(self) -> bytes:
        track = self.tracks[-1]
        seg = track.segment
        ts_unwrapped = seg.ts0 + track.units * self.audio_samples
        ts = ts_unwrapped & 0xFFFFFFFF
        track.units += 1
        assert self.audio is not None
        if self._aac is not None:
            frames = self.audio.frames
            # AAC frames cannot be resampled to follow the world: they play in sequence
            frame = frames[(track.units - 1) % len(frames)]
            self._aac.ssrc = seg.ssrc
            self._aac.sequence = track.sequence
            packet = self._aac.packetize(frame, ts)
            track.sequence = self._aac.sequence
            payload_len = len(packet) - 12
        elif not self.content:
            payload = self.audio.data[: self.audio_samples]
            packet = build_rtp(track.format.payload_type, track.sequence, ts, seg.ssrc, payload)
            track.sequence = (track.sequence + 1) & 0xFFFF
            payload_len = len(payload)
        else:
            first = seg.time_at(ts_unwrapped) + seg.offset
            steps = np.arange(self.audio_samples) / seg.rate
            world = self.world_time(first) + steps * (1 + self.faults.video_skew_ppm * 1e-6)
            index = np.rint(world * self.audio.sample_rate).astype(np.int64) % len(self._g711)
            echo = self.echo
            if echo is not None and echo.active_until is not None and first < echo.active_until:
                codec = self.audio.codec
                heard = decode_table(codec)[self._g711[index]] + echo.render(first, len(index))
                payload = from_float(np.clip(heard, -1.0, 1.0), codec)
            else:
                payload = self._g711[index].tobytes()
            packet = build_rtp(track.format.payload_type, track.sequence, ts, seg.ssrc, payload)
            track.sequence = (track.sequence + 1) & 0xFFFF
            payload_len = len(payload)
        track.packets += 1
        track.octets += payload_len
        return packet

    def _sender_reports(self, t: float, due: list[int]) -> list[Emission]:
        f = self.faults
        if f.sender_reports == "absent" or (f.sender_reports == "late" and t < self.start + f.sr_late_s):
            return []
        ntp = self.wall_clock(t)
        if f.sender_reports == "frozen":
            if self._frozen_ntp is None:
                self._frozen_ntp = ntp
            ntp = self._frozen_ntp
        elif f.sender_reports == "jumping":
            if self._rng.random() < 0.3:
                self._ntp_jump = self._rng.choice((-1, 1)) * self._rng.uniform(0.3, 3.0)
            ntp += self._ntp_jump
        out = []
        for index in due:
            track = self.tracks[index]
            seg = track.segment
            report = SenderReport(seg.ssrc, seconds_to_ntp(ntp + NTP_EPOCH_OFFSET), seg.ts_at(t) & 0xFFFFFFFF,
                                  track.packets, track.octets)
            sdes = SourceDescription([(seg.ssrc, {1: self.cname.encode()})])
            out.append(Emission(t, index, True, serialize_rtcp([report, sdes])))
        return out
