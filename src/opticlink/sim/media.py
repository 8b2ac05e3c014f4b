"""Media a simulated camera sends: H.264 or H.265 clips and encoded audio, made with PyAV and cached.

A synthetic clip flashes white on the first frame of every second while the audio beeps, so sync
is visible and audible; a caller-supplied clip (such as av-drift-detector's test video) is
transcoded once to what a camera sends (H.264 or H.265, one-second closed GOPs, no B-frames unless
asked for; G.711 or AAC). With B-frames a clip keeps its frames in decoding order, as the encoder
outputs them, with each frame's presentation index beside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from opticlink.dsp.files import read_audio
from opticlink.dsp.g711 import encode_g711
from opticlink.media import split_annexb
from opticlink.rtp.formats.aac import audio_specific_config

CLIP_MAGIC = b"OLCLIP1\n"
VideoCodec = Literal["h264", "h265"]
VIDEO_CODECS: tuple[str, ...] = ("h264", "h265")
MAX_BFRAMES = 3
H264_PARAMETER_SETS = {7: "sps", 8: "pps"}  # nal_unit_type -> which
H265_PARAMETER_SETS = {32: "vps", 33: "sps", 34: "pps"}
H264_IDR = 5
H265_IRAP = range(16, 22)  # BLA, IDR and CRA pictures


def nal_kind(nal: bytes, codec: str) -> int:
    """The nal_unit_type of an H.264 or H.265 NAL unit."""
    return (nal[0] >> 1) & 0x3F if codec == "h265" else nal[0] & 0x1F


def is_parameter_set(nal: bytes, codec: str) -> bool:
    """Whether a NAL unit is an SPS or PPS (H.264) or a VPS, SPS or PPS (H.265)."""
    return nal_kind(nal, codec) in (H265_PARAMETER_SETS if codec == "h265" else H264_PARAMETER_SETS)


def cache_dir() -> Path:
    """Where made media is kept (`$OPTICLINK_CACHE`, else ~/.cache/opticlink)."""
    path = Path(os.environ.get("OPTICLINK_CACHE", Path.home() / ".cache" / "opticlink"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(slots=True)
class VideoClip:
    """H.264 or H.265 frames in decoding order, NAL units without start codes.

    `pts[i]` is the presentation index of the i-th frame (empty: decoding order is presentation
    order). GOPs are closed and the clip starts on a keyframe, so it loops cleanly."""

    frames: list[list[bytes]]
    keyframes: list[bool]
    fps: Fraction
    width: int
    height: int
    sps: bytes
    pps: bytes
    codec: str = "h264"  # "h264" or "h265"
    vps: bytes = b""  # H.265 only
    pts: list[int] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.frames) / float(self.fps)

    @property
    def presentation(self) -> list[int]:
        """The presentation index of each frame, in decoding order."""
        return self.pts or list(range(len(self.frames)))

    @property
    def reorder_delay(self) -> int:
        """Frames a frame's sending lags its capture for reordering: 0 without B-frames."""
        highest, delay = -1, 0
        for index, pts in enumerate(self.presentation):
            highest = max(highest, pts)
            delay = max(delay, highest - index)
        return delay

    @property
    def parameter_sets(self) -> tuple[bytes, ...]:
        """(SPS, PPS) for H.264, (VPS, SPS, PPS) for H.265."""
        return (self.vps, self.sps, self.pps) if self.codec == "h265" else (self.sps, self.pps)

    def save(self, path: Path) -> None:
        meta = {"fps": [self.fps.numerator, self.fps.denominator], "width": self.width, "height": self.height,
                "keyframes": self.keyframes, "sps": self.sps.hex(), "pps": self.pps.hex(),
                "codec": self.codec, "vps": self.vps.hex(), "pts": self.pts,
                "counts": [len(f) for f in self.frames]}
        raw = json.dumps(meta).encode()
        # A temporary file of this writer's own (mkstemp, as auth/certificate.py writes): test processes
        # that build the same clip at once (a fresh cache) each write theirs and replace the clip with
        # it, and the last one stays.
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        try:
            os.fchmod(descriptor, 0o644)  # readable as the cache's files were (mkstemp makes it 0600)
            with os.fdopen(descriptor, "wb") as f:
                f.write(CLIP_MAGIC + struct.pack("!I", len(raw)) + raw)
                for frame in self.frames:
                    for nal in frame:
                        f.write(struct.pack("!I", len(nal)) + nal)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> VideoClip:
        data = path.read_bytes()
        if not data.startswith(CLIP_MAGIC):
            raise ValueError(f"{path} is not a clip file")
        (size,) = struct.unpack_from("!I", data, len(CLIP_MAGIC))
        offset = len(CLIP_MAGIC) + 4
        meta = json.loads(data[offset : offset + size])
        offset += size
        frames = []
        for count in meta["counts"]:
            nalus = []
            for _ in range(count):
                (n,) = struct.unpack_from("!I", data, offset)
                nalus.append(data[offset + 4 : offset + 4 + n])
                offset += 4 + n
            frames.append(nalus)
        return cls(frames, meta["keyframes"], Fraction(*meta["fps"]), meta["width"], meta["height"],
                   bytes.fromhex(meta["sps"]), bytes.fromhex(meta["pps"]), meta.get("codec", "h264"),
                   bytes.fromhex(meta.get("vps", "")), list(meta.get("pts", [])))


def _check_options(codec: str, bframes: int) -> None:
    if codec not in VIDEO_CODECS:
        raise ValueError(f"the simulator sends {' or '.join(VIDEO_CODECS)} video, not {codec!r}")
    if not 0 <= bframes <= MAX_BFRAMES:
        raise ValueError(f"bframes must be 0 to {MAX_BFRAMES}, not {bframes}")


def _encoder(width: int, height: int, fps: Fraction, bitrate: int, codec: str = "h264",
             bframes: int = 0) -> av.VideoCodecContext:
    """libx264 or libx265: one-second closed GOPs, no scene cuts, parameter sets on every keyframe."""
    _check_options(codec, bframes)
    ctx = av.CodecContext.create("libx265" if codec == "h265" else "libx264", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = 1 / fps
    ctx.framerate = fps
    ctx.bit_rate = bitrate
    gop = max(1, round(float(fps)))
    vbv = f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}"
    gops = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:repeat-headers=1"
    if codec == "h265":
        ctx.options = {"preset": "veryfast",
                       "x265-params": f"{gops}:b-adapt=0:open-gop=0:{vbv}:log-level=error"}
    elif bframes == 0:
        ctx.options = {"preset": "veryfast", "tune": "zerolatency", "x264-params": f"{gops}:{vbv}:nal-hrd=none"}
    else:
        ctx.options = {"preset": "veryfast", "profile": "high",
                       "x264-params": f"{gops}:b-adapt=0:open-gop=0:{vbv}:nal-hrd=none"}
    return ctx


class _ClipBuilder:
    """Collects an encoder's packets in the order it outputs them (decoding order)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.frames: list[list[bytes]] = []
        self.keys: list[bool] = []
        self.pts: list[int] = []
        self.sets: dict[int, bytes] = {}

    def collect(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            nalus = split_annexb(bytes(packet))
            kinds = [nal_kind(n, self.codec) for n in nalus]
            for nal, kind in zip(nalus, kinds, strict=True):
                if is_parameter_set(nal, self.codec) and kind not in self.sets:
                    self.sets[kind] = nal
            self.frames.append(nalus)
            self.keys.append(any(k in H265_IRAP for k in kinds) if self.codec == "h265" else H264_IDR in kinds)
            self.pts.append(len(self.pts) if packet.pts is None else int(packet.pts))

    def clip(self, fps: Fraction, width: int, height: int) -> VideoClip:
        """The clip; raises ValueError unless its GOPs are closed and cover every frame once."""
        first = min(self.pts, default=0)
        pts = [p - first for p in self.pts]
        if sorted(pts) != list(range(len(pts))) or (self.keys and not self.keys[0]):
            raise ValueError("the encoder's output does not loop: presentation indices are not 0..n-1")
        highest = gop_start = -1
        for index, p in enumerate(pts):
            if self.keys[index]:
                if p <= highest:
                    raise ValueError("the encoder's output does not loop: a GOP is open")
                gop_start = p
            elif p < gop_start:
                raise ValueError("the encoder's output does not loop: a frame leads its keyframe")
            highest = max(highest, p)
        if pts == list(range(len(pts))):
            pts = []
        sets = self.sets
        if self.codec == "h265":
            return VideoClip(self.frames, self.keys, fps, width, height, sets.get(33, b""), sets.get(34, b""),
                             "h265", sets.get(32, b""), pts)
        return VideoClip(self.frames, self.keys, fps, width, height, sets.get(7, b""), sets.get(8, b""),
                         "h264", b"", pts)


def synthetic_video(width: int = 640, height: int = 360, fps: int = 25, seconds: int = 4,
                    bitrate: int = 800_000, *, codec: VideoCodec = "h264", bframes: int = 0) -> VideoClip:
    """A moving test picture that flashes on the first frame of every second (cached).

    `codec` is h264 or h265; `bframes` (0 to 3) B-frames between reference frames."""
    _check_options(codec, bframes)
    key = f"synthetic-{codec}-b{bframes}-{width}x{height}-{fps}-{seconds}-{bitrate}-v2"
    path = cache_dir() / f"{key}.clip"
    if path.exists():
        return VideoClip.load(path)
    ctx = _encoder(width, height, Fraction(fps), bitrate, codec, bframes)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 24, size=(4, height, width), dtype=np.uint8) if bitrate > 2_000_000 else None
    builder = _ClipBuilder(codec)
    ys, xs = np.mgrid[0:height, 0:width]
    for i in range(fps * seconds):
        phase = i / (fps * seconds)
        y = ((xs + ys + int(phase * 4 * width)) % 256 // 2 + 40).astype(np.uint8)
        box = int((math.sin(2 * math.pi * phase * 2) * 0.4 + 0.5) * (width - height // 4))
        y[height // 3 : height // 3 + height // 4, box : box + height // 4] = 220
        for bit in range(12):  # frame number as blocks along the bottom
            if (i >> bit) & 1:
                y[height - height // 12 :, bit * width // 12 : (bit + 1) * width // 12 - 2] = 235
        if noise is not None:
            y = y + noise[i % 4]
        if i % fps == 0:
            y[:] = 235
        u = np.full((height // 2, width // 2), 128, np.uint8)
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, data in zip(frame.planes, (y, u, u), strict=True):
            _write_plane(plane, data)
        frame.pts = i
        builder.collect(ctx.encode(frame))
    builder.collect(ctx.encode(None))
    clip = builder.clip(Fraction(fps), width, height)
    clip.save(path)
    return clip


def _write_plane(plane: av.video.plane.VideoPlane, data: np.ndarray) -> None:
    h, w = data.shape
    stride = plane.line_size
    if stride == w:
        plane.update(np.ascontiguousarray(data).tobytes())
    else:
        padded = np.zeros((h, stride), np.uint8)
        padded[:, :w] = data
        plane.update(padded.tobytes())


def _file_key(path: Path, *parts: object) -> str:
    stat = path.stat()
    digest = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{parts}".encode()).hexdigest()
    return digest[:16]


def load_video(path: str | os.PathLike[str], bitrate: int = 1_500_000, *, codec: VideoCodec = "h264",
               bframes: int = 0) -> VideoClip:
    """A caller's clip transcoded to a camera's H.264 or H.265 profile (cached by file and settings)."""
    _check_options(codec, bframes)
    source = Path(path)
    cached = cache_dir() / f"file-{_file_key(source, bitrate, codec, bframes)}.clip"
    if cached.exists():
        return VideoClip.load(cached)
    builder = _ClipBuilder(codec)
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        fps = Fraction(fps).limit_denominator(1001)
        ctx = _encoder(stream.codec_context.width, stream.codec_context.height, fps, bitrate, codec, bframes)
        for index, decoded in enumerate(container.decode(stream)):
            frame = decoded.reformat(format="yuv420p")
            frame.pts = index
            frame.time_base = 1 / fps
            builder.collect(ctx.encode(frame))
        builder.collect(ctx.encode(None))
        width, height = ctx.width, ctx.height
    clip = builder.clip(fps, width, height)
    clip.save(cached)
    return clip


@dataclass(slots=True)
class AudioClip:
    """Mono 16-bit PCM at `sample_rate`, looped by the camera."""

    pcm: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    def fitted(self, samples: int) -> AudioClip:
        """This clip cut or padded with silence to exactly `samples` samples."""
        pcm = self.pcm[:samples]
        if len(pcm) < samples:
            pcm = np.concatenate([pcm, np.zeros(samples - len(pcm), np.int16)])
        return AudioClip(pcm, self.sample_rate)


def synthetic_audio(sample_rate: int, seconds: int, level_db: float = -12.0) -> AudioClip:
    """A 1 kHz beep of 100 ms at the start of every second over a quiet 440 Hz hum."""
    t = np.arange(sample_rate * seconds) / sample_rate
    amplitude = 10 ** (level_db / 20) * 32767
    signal = 0.05 * np.sin(2 * np.pi * 440 * t)
    beep = (t % 1.0) < 0.1
    signal[beep] += np.sin(2 * np.pi * 1000 * t[beep])
    return AudioClip(np.clip(signal * amplitude, -32768, 32767).astype(np.int16), sample_rate)


def load_audio(path: str | os.PathLike[str], sample_rate: int) -> AudioClip:
    """A file's first audio stream as mono PCM at `sample_rate`."""
    samples = read_audio(path, sample_rate)
    return AudioClip(np.clip(samples * 32767, -32768, 32767).astype(np.int16), sample_rate)


@dataclass(slots=True)
class EncodedAudio:
    """An audio clip encoded for RTP: G.711 as one byte per sample, AAC as raw frames."""

    codec: str  # "pcmu", "pcma", "aac"
    sample_rate: int
    data: bytes = b""  # G.711 samples
    frames: tuple[bytes, ...] = ()  # AAC frames of `frame_samples` samples
    frame_samples: int = 0
    config: bytes = b""  # AAC AudioSpecificConfig

    @property
    def samples(self) -> int:
        return len(self.data) if self.codec != "aac" else len(self.frames) * self.frame_samples


def encode_audio(clip: AudioClip, codec: str) -> EncodedAudio:
    """Encode a clip with PyAV's encoders (pcm_mulaw, pcm_alaw, aac)."""
    if codec in ("pcmu", "pcma"):
        return EncodedAudio(codec, clip.sample_rate, data=encode_g711(clip.pcm, codec, clip.sample_rate))
    if codec != "aac":
        raise ValueError(f"the simulator cannot send {codec!r} audio")
    # AAC frames are 1024 samples: encode enough loops that the frames loop with the clip
    loops = 1024 // math.gcd(len(clip.pcm), 1024)
    pcm = np.tile(clip.pcm, loops)
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate = clip.sample_rate
    ctx.layout = "mono"
    ctx.format = "fltp"
    ctx.bit_rate = 32000 if clip.sample_rate <= 16000 else 64000
    frames: list[bytes] = []
    # encode with a wrap-around lead-in so the first frame overlaps the clip's end, as when looping
    lead = np.concatenate([pcm[-2048:], pcm])
    for start in range(0, len(lead), 1024):
        chunk = lead[start : start + 1024]
        if len(chunk) < 1024:
            chunk = np.concatenate([chunk, pcm[: 1024 - len(chunk)]])
        frame = av.AudioFrame.from_ndarray((chunk.astype(np.float32) / 32768.0)[None, :], format="fltp",
                                           layout="mono")
        frame.sample_rate = clip.sample_rate
        frame.pts = start
        frames.extend(bytes(p) for p in ctx.encode(frame))
    frames.extend(bytes(p) for p in ctx.encode(None))
    # the encoder's priming delay is 1024 samples: skip it and the lead-in
    count = len(pcm) // 1024
    skip = 1 + 2048 // 1024
    body = tuple(frames[skip : skip + count])
    return EncodedAudio("aac", clip.sample_rate, frames=body, frame_samples=1024,
                        config=audio_specific_config(clip.sample_rate, 1))
