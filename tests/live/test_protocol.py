import base64
import json
from fractions import Fraction

import av
import numpy as np

from opticlink.live.protocol import (
    SENT_UNITS_PER_S,
    decode_frame_header,
    encode_config,
    encode_frame,
    sent_units,
    track_description,
)
from opticlink.media import AudioConfig, MediaFrame, VideoConfig, length_prefixed, split_annexb
from opticlink.rtp.formats.aac import audio_specific_config


def test_frame_header_round_trips_with_wall_clock():
    frame = MediaFrame(3, "video", "h264", 123456789, 40000, True, b"payload", VideoConfig("h264", (b"", b"")),
                       wall_clock=1_795_000_000.25, discontinuity=True)
    message = encode_frame(frame)
    assert len(message) == 24 + 7 and message.endswith(b"payload")
    assert decode_frame_header(message) == (3, 1 | 2, 123456789.0, 1_795_000_000_250_000.0)
    assert encode_frame(frame)[4:8] == bytes(4)  # no send time


def test_the_send_time_wraps_in_32_bits_and_the_difference_survives_the_wrap():
    frame = MediaFrame(0, "audio", "pcmu", 0, 20000, True, b"x", None)
    sent = (41_800 * 2**32 - 50) / SENT_UNITS_PER_S  # in 2026, 0.5 ms before the units wrap
    units = int.from_bytes(encode_frame(frame, sent)[4:8], "little")
    received = sent_units(sent + 0.002)  # 2 ms later, after the wrap
    assert received < units
    delay = ((received - units + 2**31) % 2**32) - 2**31  # the page's signed 32-bit difference
    assert abs(delay / SENT_UNITS_PER_S - 0.002) < 2e-5


def test_config_describes_aac_for_webcodecs():
    config = AudioConfig("aac", 16000, 1, audio_specific_config(16000, 1), 1024)
    description = track_description(1, "audio", config)
    assert description["codec"] == "mp4a.40.2" and description["sampleRate"] == 16000
    assert base64.b64decode(description["description"]) == bytes.fromhex("1408")
    body = json.loads(encode_config("cam", "Door", [description])[1:])
    assert body == {"camera": "cam", "name": "Door", "tracks": [description]}


def test_hvcc_built_from_parameter_sets_lets_a_decoder_read_length_prefixed_hevc():
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = 160, 96, "yuv420p", Fraction(1, 25)
    encoder.options = {"x265-params": "log-level=none:repeat-headers=1:bframes=0"}
    packets = []
    for i in range(5):
        frame = av.VideoFrame.from_ndarray(np.full((96, 160, 3), i * 40, np.uint8), format="rgb24")
        frame.pts = i
        packets += [bytes(p) for p in encoder.encode(frame.reformat(format="yuv420p"))]
    packets += [bytes(p) for p in encoder.encode(None)]
    nalus = [split_annexb(p) for p in packets]
    sets = {(n[0] >> 1) & 0x3F: n for unit in nalus for n in unit if (n[0] >> 1) & 0x3F in (32, 33, 34)}
    config = VideoConfig("h265", (sets[32], sets[33], sets[34]))
    description = track_description(0, "video", config)
    assert description["codec"].startswith("hvc1.1.")
    decoder = av.CodecContext.create("hevc", "r")
    decoder.extradata = base64.b64decode(description["description"])
    decoded = []
    for unit in nalus:
        slices = [n for n in unit if (n[0] >> 1) & 0x3F < 32]
        decoded += decoder.decode(av.Packet(length_prefixed(slices)))
    decoded += decoder.decode(None)
    assert len(decoded) == 5 and decoded[0].width == 160
