import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opticlink.media import split_annexb, split_length_prefixed
from opticlink.rtp.formats import RtpFormat, create_depacketizer
from opticlink.rtp.formats.aac import AacPacketizer, aac_fmtp, audio_specific_config, parse_audio_specific_config
from opticlink.rtp.formats.g711 import G711Packetizer
from opticlink.rtp.formats.h264 import H264Packetizer, avc_decoder_configuration, codec_string
from opticlink.rtp.formats.h265 import codec_string as hevc_codec_string
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import RtpPacket

SPS = bytes.fromhex("6742c01ed9005005bb011000000300100000030320f162e480")
PPS = bytes.fromhex("68cb8cb2")
IDR = bytes([0x65]) + bytes(range(256)) * 20
P_SLICE = bytes([0x41]) + b"\x11" * 300
H264 = RtpFormat(96, "H264", 90000, 1, {"packetization-mode": "1",
                                         "sprop-parameter-sets": f"{base64.b64encode(SPS).decode()},"
                                                                 f"{base64.b64encode(PPS).decode()}"})


def feed(depacketizer, packets, arrival=0.0):
    out = []
    for i, wire in enumerate(packets):
        out += depacketizer.push(BufferedPacket(RtpPacket.parse(wire), i, arrival))
    return out


def test_h264_fu_a_round_trip_gives_one_keyframe_unit_with_sprop_config():
    packetizer = H264Packetizer(96, ssrc=1, mtu=1200)
    packets = packetizer.packetize([SPS, PPS, IDR], 9000)
    assert len(packets) > 3
    units = feed(create_depacketizer(H264), packets, arrival=1.5)
    assert len(units) == 1
    unit = units[0]
    assert unit.keyframe and unit.timestamp == 9000 and unit.arrival == 1.5
    assert split_length_prefixed(unit.data) == [SPS, PPS, IDR]
    assert unit.config.parameter_sets == (SPS, PPS)


def test_h264_stap_a_and_single_nal_packets():
    stap = bytes([24]) + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    packets = [RtpPacket(96, 1, 0, 1, stap).serialize(), RtpPacket(96, 2, 0, 1, IDR[:100], marker=True).serialize()]
    units = feed(create_depacketizer(RtpFormat(96, "H264", 90000)), packets)
    assert split_length_prefixed(units[0].data) == [SPS, PPS, IDR[:100]]
    assert units[0].config.parameter_sets == (SPS, PPS)  # learnt in-band


def test_h264_frame_split_over_packets_with_markers_on_each_slice_stays_together():
    depacketizer = create_depacketizer(H264)
    slices = [bytes([0x41]) + bytes([i]) * 50 for i in range(3)]
    # first frame: a marker on every slice (a camera quirk) reveals itself on the second packet
    frame1 = [RtpPacket(96, i, 3000, 1, s, marker=True).serialize() for i, s in enumerate(slices)]
    frame2 = [RtpPacket(96, 3 + i, 6000, 1, s, marker=True).serialize() for i, s in enumerate(slices)]
    frame3 = [RtpPacket(96, 6, 9000, 1, P_SLICE, marker=True).serialize()]
    units = feed(depacketizer, frame1 + frame2 + frame3)
    assert not depacketizer.marker_trusted
    assert [u.timestamp for u in units] == [3000, 3000, 6000]  # the quirk cost one split, then no more
    assert len(split_length_prefixed(units[2].data)) == 3


def test_h264_unit_with_a_lost_fragment_is_dropped_and_the_next_marks_the_discontinuity():
    depacketizer = create_depacketizer(H264)
    packets = H264Packetizer(96, 1, mtu=500).packetize([IDR], 3000)
    feed(depacketizer, packets[:2])
    depacketizer.loss()
    units = feed(depacketizer, packets[3:])
    units += feed(depacketizer, [RtpPacket(96, 50, 6000, 1, P_SLICE, marker=True).serialize()])
    assert [u.timestamp for u in units] == [6000]
    assert units[0].discontinuity and depacketizer.dropped == 1


def test_h264_in_band_parameter_set_change_makes_a_new_config():
    depacketizer = create_depacketizer(H264)
    new_sps = SPS[:-1] + b"\x81"
    units = feed(depacketizer, H264Packetizer(96, 1).packetize([new_sps, PPS, IDR[:50]], 0))
    assert units[0].config.parameter_sets == (new_sps, PPS)


def test_avcc_record_and_codec_string():
    record = avc_decoder_configuration(SPS, PPS)
    assert record[:4] == bytes([1, 0x42, 0xC0, 0x1E]) and record[5] == 0xE1
    assert codec_string(SPS) == "avc1.42c01e"


def test_annexb_split_handles_three_and_four_byte_start_codes():
    stream = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + IDR[:10]
    assert split_annexb(stream) == [SPS, PPS, IDR[:10]]


H265_VPS = bytes.fromhex("40010c01ffff016000000300b0000003000003005dac09")
H265_SPS = bytes.fromhex("420101016000000300b0000003000003005da00280802d165bab930bc05a80808082")
H265_PPS = bytes.fromhex("4401c172b46240")


def test_h265_aggregation_and_fragmentation_units():
    fmt = RtpFormat(96, "H265", 90000)
    ap = bytes([48 << 1, 1])
    for nal in (H265_VPS, H265_SPS, H265_PPS):
        ap += len(nal).to_bytes(2, "big") + nal
    idr = bytes([19 << 1, 1]) + bytes(range(200)) * 5
    fu_start = bytes([49 << 1, 1, 0x80 | 19]) + idr[2:400]
    fu_end = bytes([49 << 1, 1, 0x40 | 19]) + idr[400:]
    packets = [RtpPacket(96, 1, 0, 1, ap).serialize(), RtpPacket(96, 2, 0, 1, fu_start).serialize(),
               RtpPacket(96, 3, 0, 1, fu_end, marker=True).serialize()]
    units = feed(create_depacketizer(fmt), packets)
    assert len(units) == 1 and units[0].keyframe
    assert split_length_prefixed(units[0].data) == [H265_VPS, H265_SPS, H265_PPS, idr]
    assert units[0].config.parameter_sets == (H265_VPS, H265_SPS, H265_PPS)


def test_hevc_codec_string_reads_profile_tier_level_through_emulation_prevention():
    assert hevc_codec_string(H265_SPS) == "hvc1.1.6.L93.B0"


def test_aac_hbr_packets_with_several_frames_get_consecutive_timestamps():
    config = audio_specific_config(16000, 1)
    fmt = RtpFormat(97, "MPEG4-GENERIC", 16000, 1, aac_fmtp(config))
    frames = [b"\x21" * 100, b"\x22" * 120, b"\x23" * 90]
    headers = b"".join((len(f) << 3).to_bytes(2, "big") for f in frames)
    payload = (16 * len(frames)).to_bytes(2, "big") + headers + b"".join(frames)
    units = feed(create_depacketizer(fmt), [RtpPacket(97, 1, 1000, 1, payload, marker=True).serialize()])
    assert [u.data for u in units] == frames
    assert [u.timestamp for u in units] == [1000, 2024, 3048]
    assert units[0].config.sample_rate == 16000 and units[0].config.extra == config


def test_aac_frame_fragmented_over_packets_is_reassembled():
    fmt = RtpFormat(97, "MPEG4-GENERIC", 48000, 2, aac_fmtp(audio_specific_config(48000, 2)))
    frame = bytes(range(256)) * 8
    header = (16).to_bytes(2, "big") + (len(frame) << 3).to_bytes(2, "big")
    packets = [RtpPacket(97, 1, 0, 1, header + frame[:1000]).serialize(),
               RtpPacket(97, 2, 0, 1, header + frame[1000:], marker=True).serialize()]
    units = feed(create_depacketizer(fmt), packets)
    assert [u.data for u in units] == [frame]


def test_aac_packetizer_round_trips_and_asc_parses():
    config = audio_specific_config(8000, 1)
    assert parse_audio_specific_config(config) == (2, 8000, 1, 1024)
    wire = AacPacketizer(97, 5).packetize(b"\x01\x02\x03", 4096)
    fmt = RtpFormat(97, "MPEG4-GENERIC", 8000, 1, aac_fmtp(config))
    assert [u.data for u in feed(create_depacketizer(fmt), [wire])] == [b"\x01\x02\x03"]


@pytest.mark.parametrize("packet_ms", [20, 40, 160])
def test_g711_packetizer_cuts_the_configured_duration(packet_ms):
    packetizer = G711Packetizer(0, ssrc=1, packet_ms=packet_ms, sequence=65535, timestamp=100)
    packets = packetizer.push(b"\x7f" * 8000)
    assert len(packets) == 1000 // packet_ms
    parsed = [RtpPacket.parse(p) for p in packets]
    assert all(len(p.payload) == 8 * packet_ms for p in parsed)
    assert parsed[1].timestamp - parsed[0].timestamp == 8 * packet_ms
    assert [p.sequence for p in parsed[:2]] == [65535, 0] and parsed[0].marker and not parsed[1].marker
    units = feed(create_depacketizer(RtpFormat(0, "PCMU", 8000)), packets)
    assert units[0].duration == 8 * packet_ms


def test_g711_packet_duration_outside_camera_limits_is_refused():
    with pytest.raises(ValueError, match="outside"):
        G711Packetizer(0, 1, packet_ms=200)


def test_l16_stereo_units_count_frames():
    fmt = RtpFormat(97, "L16", 16000, 2)
    units = feed(create_depacketizer(fmt), [RtpPacket(97, 1, 0, 1, b"\x00\x01" * 64 + b"\x05").serialize()])
    assert units[0].duration == 32 and len(units[0].data) == 128


FORMATS = [H264, RtpFormat(96, "H265", 90000, 1, {"sprop-max-don-diff": "2"}),
           RtpFormat(97, "MPEG4-GENERIC", 16000, 1, aac_fmtp(audio_specific_config(16000, 1))),
           RtpFormat(0, "PCMU", 8000), RtpFormat(97, "L16", 8000, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.encoding)
@settings(max_examples=300)
@given(payloads=st.lists(st.tuples(st.binary(max_size=80), st.booleans(), st.integers(0, 3)), max_size=12))
def test_depacketizers_never_raise_on_garbage_payloads(fmt, payloads):
    depacketizer = create_depacketizer(fmt)
    for i, (payload, marker, ts) in enumerate(payloads):
        if i % 5 == 4:
            depacketizer.loss()
        depacketizer.push(BufferedPacket(RtpPacket(fmt.payload_type, i, ts * 3000, 1, payload, marker), i, 0.0))
    depacketizer.flush()
