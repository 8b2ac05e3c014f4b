"""The live WebSocket protocol: compact binary messages, little-endian.

- config (type 1): `0x01` then UTF-8 JSON `{"camera", "name", "tracks": [...]}`, one entry per
  track with what a WebCodecs decoder needs: `codec` ("avc1.42c01e", "hvc1...", "pcmu", "pcma",
  "mp4a.40.2", "l16"), `description` (base64 avcC, hvcC or AudioSpecificConfig), sample rate and
  channels. Sent first, and again whenever a camera's configuration changes.
- frame (type 2): a 24-byte header — type, track, flags (1 keyframe, 2 discontinuity,
  4 re-anchored, 8 non-reference: a picture no other is predicted from, which a player that is
  behind may leave undecoded), a zero byte, uint32 time the server sent it (units of 10 µs since the Unix epoch,
  modulo 2^32: the page takes its own receipt time minus this, as a signed 32-bit difference, for
  the delivery delay; 0 when unknown), float64 presentation time (µs on the camera session's
  timeline) and float64 camera capture time (µs since the Unix epoch, 0 when unknown) — then
  the payload: video as 4-byte length-prefixed NAL units (the layout the description implies),
  audio as the codec's frame.

From the viewer:
- talk (type 3): a 24-byte header — type, flags (0), uint16 sequence, uint32 sample rate (8000 or
  16000), float64 capture time of the first sample and float64 time the frame was sent (µs since
  the Unix epoch, 0 when unknown) — then 16-bit little-endian mono PCM, 10 to 160 ms of it.
- control (text): JSON `{"type": "talk", "action": "start" | "stop"}`; the answer is JSON
  `{"type": "talk", "state": "granted" | "busy" | "unavailable" | "stopped" | "error", ...}`
  (granted carries the backchannel's `codec`, `rate` and `packet_ms`; busy the `talker`; the
  others a `reason`).

Also from the server, as text: on connecting, `{"type": "talk", "talking", "you", "available",
"reason"}` (who talks now, the name this viewer goes by, whether this camera can be talked to and
why not), and to every viewer whenever it changes, `{"type": "talk", "talking": NAME | null}`.
"""

from __future__ import annotations

import base64
import json
import struct

from opticlink.media import AudioConfig, CodecConfig, MediaFrame, VideoConfig
from opticlink.rtp.formats import h264, h265

CONFIG, FRAME, TALK = 1, 2, 3
KEYFRAME, DISCONTINUITY, REANCHORED, NON_REFERENCE = 1, 2, 4, 8
FRAME_HEADER = struct.Struct("<BBBxIdd")
SENT_UNITS_PER_S = 100_000
TALK_HEADER = struct.Struct("<BBHIdd")
TALK_RATES = (8000, 16000)
TALK_MIN_MS, TALK_MAX_MS = 10, 160


class TalkFrameError(ValueError):
    """A talk frame from a viewer that breaks the protocol; the message says how."""


def encode_talk(sequence: int, rate: int, pcm: bytes, captured_us: float = 0.0, sent_us: float = 0.0) -> bytes:
    return TALK_HEADER.pack(TALK, 0, sequence & 0xFFFF, rate, captured_us, sent_us) + pcm


def decode_talk(message: bytes) -> tuple[int, int, float, float, bytes]:
    """(sequence, rate, captured µs, sent µs, PCM bytes) of a talk frame, or `TalkFrameError`."""
    if len(message) < TALK_HEADER.size:
        raise TalkFrameError(f"talk frame of {len(message)} bytes is shorter than its {TALK_HEADER.size}-byte header")
    kind, flags, sequence, rate, captured, sent = TALK_HEADER.unpack_from(message)
    if kind != TALK or flags != 0:
        raise TalkFrameError(f"not a talk frame (type {kind}, flags {flags})")
    if rate not in TALK_RATES:
        raise TalkFrameError(f"talk sample rate {rate} Hz is not one of {TALK_RATES}")
    pcm = message[TALK_HEADER.size :]
    if len(pcm) % 2:
        raise TalkFrameError("talk PCM has an odd number of bytes")
    ms = len(pcm) // 2 * 1000 / rate
    if not TALK_MIN_MS <= ms <= TALK_MAX_MS:
        raise TalkFrameError(f"talk frame of {ms:.1f} ms is outside {TALK_MIN_MS}..{TALK_MAX_MS} ms")
    if not (captured == captured and sent == sent) or captured < 0 or sent < 0:  # NaN or negative
        raise TalkFrameError("talk frame times are not valid numbers")
    return sequence, rate, captured, sent, pcm


def _never(_: bytes) -> bool:
    return False


_NON_REFERENCE = {"h264": h264.non_reference, "h265": h265.non_reference}


def sent_units(unix_s: float) -> int:
    """A send time (Unix seconds) as the frame header carries it."""
    return int(unix_s * SENT_UNITS_PER_S) & 0xFFFFFFFF


def encode_frame(frame: MediaFrame, sent: float | None = None) -> bytes:
    """A frame message; `sent`: the Unix time it is sent at (shared by every viewer it goes to)."""
    flags = (KEYFRAME if frame.keyframe else 0) | (DISCONTINUITY if frame.discontinuity else 0) | (
        REANCHORED if frame.reanchored else 0)
    if frame.kind == "video" and not frame.keyframe and _NON_REFERENCE.get(frame.codec, _never)(frame.data):
        flags |= NON_REFERENCE
    wall = frame.wall_clock * 1e6 if frame.wall_clock is not None else 0.0
    units = sent_units(sent) if sent is not None else 0
    return FRAME_HEADER.pack(FRAME, frame.track, flags, units, float(frame.pts_us), wall) + frame.data


def decode_frame_header(message: bytes) -> tuple[int, int, float, float]:
    """(track, flags, pts µs, wall µs) of a frame message."""
    kind, track, flags, _, pts, wall = FRAME_HEADER.unpack_from(message)
    if kind != FRAME:
        raise ValueError(f"not a frame message (type {kind})")
    return track, flags, pts, wall


def track_description(track: int, kind: str, config: CodecConfig) -> dict[str, object]:
    """What the player needs to configure its decoder for one track."""
    if isinstance(config, VideoConfig):
        if config.codec == "h264":
            sps, pps = config.parameter_sets
            codec = h264.codec_string(sps)
            description = h264.avc_decoder_configuration(sps, pps) if sps and pps else b""
        else:
            vps, sps, pps = config.parameter_sets
            codec = h265.codec_string(sps)
            description = h265.hevc_decoder_configuration(vps, sps, pps) if config.complete else b""
        return {"track": track, "kind": kind, "codec": codec, "description": base64.b64encode(description).decode()}
    assert isinstance(config, AudioConfig)
    codec = {"aac": "mp4a.40.2"}.get(config.codec, config.codec)
    return {"track": track, "kind": kind, "codec": codec, "sampleRate": config.sample_rate,
            "channels": config.channels, "description": base64.b64encode(config.extra).decode()}


def encode_config(camera: str, name: str, tracks: list[dict[str, object]]) -> bytes:
    body = json.dumps({"camera": camera, "name": name, "tracks": tracks}, separators=(",", ":"))
    return bytes([CONFIG]) + body.encode()
