"""Media a simulated camera sends: H.264 clips and encoded audio, made with PyAV and cached.

A synthetic clip flashes white on the first frame of every second while the audio beeps, so sync
is visible and audible; a caller-supplied clip (such as av-drift-detector's test video) is
transcoded once to what a camera sends (H.264 without B-frames, one-second GOP; G.711 or AAC).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from opticlink.dsp.files import read_audio
from opticlink.dsp.g711 import encode_g711
from opticlink.rtp.formats.aac import audio_specific_config
from opticlink.rtp.formats.base import split_annexb

CLIP_MAGIC = b"OLCLIP1\n"


def cache_dir() -> Path:
    """Where made media is kept (`$OPTICLINK_CACHE`, else ~/.cache/opticlink)."""
    path = Path(os.environ.get("OPTICLINK_CACHE", Path.home() / ".cache" / "opticlink"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(slots=True)
class VideoClip:
    """H.264 frames in presentation (= decoding) order, NAL units without start codes."""

    frames: list[list[bytes]]
    keyframes: list[bool]
    fps: Fraction
    width: int
    height: int
    sps: bytes
    pps: bytes

    @property
    def duration(self) -> float:
        return len(self.frames) / float(self.fps)

    def save(self, path: Path) -> None:
        meta = {"fps": [self.fps.numerator, self.fps.denominator], "width": self.width, "height": self.height,
                "keyframes": self.keyframes, "sps": self.sps.hex(), "pps": self.pps.hex(),
                "counts": [len(f) for f in self.frames]}
        raw = json.dumps(meta).encode()
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(CLIP_MAGIC + struct.pack("!I", len(raw)) + raw)
            for frame in self.frames:
                for nal in frame:
                    f.write(struct.pack("!I", len(nal)) + nal)
        tmp.replace(path)

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
                   bytes.fromhex(meta["sps"]), bytes.fromhex(meta["pps"]))


def _encoder(width: int, height: int, fps: Fraction, bitrate: int) -> av.VideoCodecContext:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = 1 / fps
    ctx.framerate = fps
    ctx.bit_rate = bitrate
    gop = max(1, round(float(fps)))
    ctx.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
                       f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}:nal-hrd=none",
    }
    return ctx


def _collect(packets: list[av.Packet], frames: list[list[bytes]], keys: list[bool], sets: dict[int, bytes]) -> None:
    for packet in packets:
        nalus = split_annexb(bytes(packet))
        for nal in nalus:
            kind = nal[0] & 0x1F
            if kind in (7, 8) and kind not in sets:
                sets[kind] = nal
        frames.append(nalus)
        keys.append(any(n[0] & 0x1F == 5 for n in nalus))


def synthetic_video(width: int = 640, height: int = 360, fps: int = 25, seconds: int = 4,
                    bitrate: int = 800_000) -> VideoClip:
    """A moving test picture that flashes on the first frame of every second (cached)."""
    key = f"synthetic-{width}x{height}-{fps}-{seconds}-{bitrate}-v1"
    path = cache_dir() / f"{key}.clip"
    if path.exists():
        return VideoClip.load(path)
    ctx = _encoder(width, height, Fraction(fps), bitrate)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 24, size=(4, height, width), dtype=np.uint8) if bitrate > 2_000_000 else None
    frames: list[list[bytes]] = []
    keys: list[bool] = []
    sets: dict[int, bytes] = {}
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
        _collect(ctx.encode(frame), frames, keys, sets)
    _collect(ctx.encode(None), frames, keys, sets)
    clip = VideoClip(frames, keys, Fraction(fps), width, height, sets.get(7, b""), sets.get(8, b""))
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


def load_video(path: str | os.PathLike[str], bitrate: int = 1_500_000) -> VideoClip:
    """A caller's clip transcoded to a camera's H.264 profile (cached by file and settings)."""
    source = Path(path)
    cached = cache_dir() / f"file-{_file_key(source, bitrate)}.clip"
    if cached.exists():
        return VideoClip.load(cached)
    frames: list[list[bytes]] = []
    keys: list[bool] = []
    sets: dict[int, bytes] = {}
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        fps = Fraction(fps).limit_denominator(1001)
        ctx = _encoder(stream.codec_context.width, stream.codec_context.height, fps, bitrate)
        for index, decoded in enumerate(container.decode(stream)):
            frame = decoded.reformat(format="yuv420p")
            frame.pts = index
            frame.time_base = 1 / fps
            _collect(ctx.encode(frame), frames, keys, sets)
        _collect(ctx.encode(None), frames, keys, sets)
        width, height = ctx.width, ctx.height
    clip = VideoClip(frames, keys, fps, width, height, sets.get(7, b""), sets.get(8, b""))
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
