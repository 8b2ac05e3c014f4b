"""The simulator behaves like cameras that broke us (issue 10): B-frames in decoding order, H.265,
parameter sets only in the SDP (or only in band), a late first Sender Report, 40 and 64 ms audio."""

import itertools

import av
import numpy as np
import pytest

from opticlink.camera.probe import probe
from opticlink.media import split_length_prefixed
from opticlink.rtp.formats import create_depacketizer
from opticlink.rtp.formats.h264 import FU_A, STAP_A
from opticlink.rtp.formats.h265 import FU, nal_type
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import RtpPacket
from opticlink.rtp.rtcp import SenderReport, parse_rtcp
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.camera import ENCODE_DELAY, FIRST_SR_S, CameraModel
from opticlink.sim.faults import Faults
from opticlink.sim.media import encode_audio, synthetic_audio, synthetic_video
from opticlink.sim.presets import camera
from opticlink.sim.server import SimulatorServer

WIDTH, HEIGHT, FPS, SECONDS, BITRATE = 320, 180, 25, 2, 300_000
TICKS = 90_000 // FPS
START_CODE = b"\x00\x00\x00\x01"


def clip(codec: str = "h264", bframes: int = 2):
    return synthetic_video(WIDTH, HEIGHT, FPS, SECONDS, BITRATE, codec=codec, bframes=bframes)


@pytest.fixture(scope="module")
def audio():
    return encode_audio(synthetic_audio(8000, SECONDS), "pcmu")


def video_packets(emissions):
    return [(e.send_time, RtpPacket.parse(e.data)) for e in emissions if not e.rtcp and e.track == 0]


def frame_number(frame: av.VideoFrame) -> int | None:
    """The frame number the test picture draws as blocks along its bottom (None on a flash)."""
    luma = frame.to_ndarray()[:HEIGHT]
    y = HEIGHT - HEIGHT // 24
    bits = [luma[y, bit * WIDTH // 12 + WIDTH // 24] > 200 for bit in range(12)]
    if luma[HEIGHT // 2, WIDTH // 2] > 200 and all(bits):
        return None
    return sum(1 << bit for bit, on in enumerate(bits) if on)


def decode(codec: str, units: list[tuple[int, list[bytes]]]) -> list[tuple[int, int | None]]:
    """Decode (pts, NAL units) in the order given; (pts, drawn frame number) in output order."""
    ctx = av.CodecContext.create(codec, "r")
    out = []
    for pts, nalus in units:
        packet = av.Packet(b"".join(START_CODE + n for n in nalus))
        packet.pts = pts
        out += [(f.pts, frame_number(f)) for f in ctx.decode(packet)]
    out += [(f.pts, frame_number(f)) for f in ctx.decode(None)]
    return out


def depacketize(model: CameraModel, emissions) -> list:
    depacketizer = create_depacketizer(model.tracks[0].format)
    units = []
    for i, (sent, packet) in enumerate(video_packets(emissions)):
        units += depacketizer.push(BufferedPacket(packet, i, sent))
    return units + depacketizer.flush()


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_bframe_clip_is_in_decoding_order_with_closed_loopable_gops(codec):
    video = clip(codec)
    n = FPS * SECONDS
    assert len(video.frames) == n and sorted(video.pts) == list(range(n)) and video.pts != list(range(n))
    assert video.reorder_delay == 2 and video.keyframes[0] and video.keyframes.count(True) == SECONDS
    for index in (i for i, key in enumerate(video.keyframes) if key):  # closed GOPs: nothing crosses a keyframe
        assert max(video.pts[:index], default=-1) < video.pts[index] == min(video.pts[index:])
    if codec == "h264":
        assert video.sps[1] == 100  # High profile
    decoded = decode("h264" if codec == "h264" else "hevc", list(zip(video.pts, video.frames, strict=True)))
    assert [pts for pts, _ in decoded] == list(range(n))  # decoder output is presentation order
    assert all(number == pts for pts, number in decoded if number is not None)
    assert sum(number is None for _, number in decoded) == SECONDS  # one flash per second


def test_model_sends_decoding_order_stamped_with_presentation_time(audio):
    video = clip("h264")
    model = CameraModel(video, audio)
    emissions = model.advance(2 * SECONDS + 1.0)
    frames = [(t, p) for t, p in video_packets(emissions) if p.marker]
    ts0 = model.tracks[0].segment.ts0
    presentation = [((p.timestamp - ts0) & 0xFFFFFFFF) // TICKS for _, p in frames]
    n = len(video.frames)
    assert presentation == [i // n * n + video.pts[i % n] for i in range(len(frames))]  # loops continue
    assert any(b < a for a, b in itertools.pairwise(presentation))  # not monotonic
    for sent, packet in frames:
        truth = model.capture_time(0, packet.ssrc, packet.timestamp)
        assert truth == pytest.approx(((packet.timestamp - ts0) & 0xFFFFFFFF) / 90_000)  # presentation time
        assert sent >= truth + ENCODE_DELAY - 1e-9  # a frame is sent after it is captured
    sends = [t for t, _ in frames]
    assert np.allclose(np.diff(sends), 1 / FPS)  # one frame per frame interval, as an encoder outputs them


def test_timestamps_of_bframes_stay_true_over_a_timestamp_jump(audio):
    model = CameraModel(clip("h264"), audio, Faults(timestamp_jump_at_s=1.3, reboot_at_s=3.1))
    frames = [(t, p) for t, p in video_packets(model.advance(5.0)) if p.marker]
    truths = [model.capture_time(0, p.ssrc, p.timestamp) for _, p in frames]
    assert None not in truths
    assert all(sent >= truth for (sent, _), truth in zip(frames, truths, strict=True))


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_parameter_sets_only_in_the_sdp_or_only_in_band(codec, audio):
    video = clip(codec, bframes=0)
    kinds = {"h264": (7, 8), "h265": (32, 33, 34)}[codec]
    sprop = {"h264": ("sprop-parameter-sets",), "h265": ("sprop-vps", "sprop-sps", "sprop-pps")}[codec]

    def inband_kinds(model):
        found = set()
        for _, packet in video_packets(model.advance(2.5)):
            payload = packet.payload
            if codec == "h264":
                assert payload[0] & 0x1F != STAP_A
                found.add(payload[1] & 0x1F if payload[0] & 0x1F == FU_A else payload[0] & 0x1F)
            else:
                found.add(payload[2] & 0x3F if nal_type(payload) == FU else nal_type(payload))
        return found

    only_sdp = CameraModel(video, audio, parameter_sets="sdp")
    assert all(key in only_sdp.tracks[0].format.fmtp for key in sprop)
    assert not inband_kinds(only_sdp) & set(kinds)
    only_inband = CameraModel(video, audio, parameter_sets="inband")
    assert not any(key in only_inband.tracks[0].format.fmtp for key in sprop)
    assert set(kinds) <= inband_kinds(only_inband)
    assert set(kinds) <= inband_kinds(CameraModel(video, audio))  # "both" is the default
    with pytest.raises(ValueError, match="parameter_sets"):
        CameraModel(video, audio, parameter_sets="never")


def test_first_sender_reports_come_in_the_configured_order(audio):
    def first_reports(faults):
        times: dict[int, list[float]] = {0: [], 1: []}
        for e in CameraModel(clip("h264", 0), audio, faults).advance(6.0):
            if e.rtcp and any(isinstance(p, SenderReport) for p in parse_rtcp(e.data)):
                times[e.track].append(e.send_time)
        return times

    late_audio = first_reports(Faults(video_sr_delay_s=0.5, audio_sr_delay_s=3.0))
    assert late_audio[0][:3] == pytest.approx([0.5, 1.5, 2.5]) and late_audio[1][:2] == pytest.approx([3.0, 4.0])
    late_video = first_reports(Faults(video_sr_delay_s=2.0))
    assert late_video[1][0] == pytest.approx(FIRST_SR_S) and late_video[0][0] == pytest.approx(2.0)
    default = first_reports(Faults())
    assert default[0][0] == default[1][0] == pytest.approx(FIRST_SR_S)
    assert Faults.parse("audio_sr_delay_s=2.5").audio_sr_delay_s == 2.5


@pytest.mark.parametrize("packet_ms", [40, 64])
def test_audio_packets_of_40_and_64_ms(packet_ms, audio):
    model = CameraModel(clip("h264", 0), audio, audio_packet_ms=packet_ms)
    emissions = model.advance(3.0)
    packets = [(e.send_time, RtpPacket.parse(e.data)) for e in emissions if not e.rtcp and e.track == 1]
    samples = 8000 * packet_ms // 1000
    assert {len(p.payload) for _, p in packets} == {samples}
    assert len(packets) == pytest.approx(3.0 / (packet_ms / 1000), abs=1)
    assert {(b.timestamp - a.timestamp) & 0xFFFFFFFF for (_, a), (_, b) in itertools.pairwise(packets)} == {samples}
    depacketizer = create_depacketizer(model.tracks[1].format)
    for i, (sent, packet) in enumerate(packets):
        (unit,) = depacketizer.push(BufferedPacket(packet, i, sent))
        assert unit.duration == samples
        # a packet goes out once its last sample is captured
        assert sent >= model.capture_time(1, packet.ssrc, packet.timestamp) + packet_ms / 1000


def test_h265_bframes_round_trip_through_our_depacketizer_and_decode(audio):
    video = clip("h265", bframes=2)
    model = CameraModel(video, audio, parameter_sets="sdp")
    emissions = model.advance(SECONDS + 0.5)
    assert any(nal_type(p.payload) == FU for _, p in video_packets(emissions))  # large NAL units were fragmented
    units = depacketize(model, emissions)
    depacketizer_sets = create_depacketizer(model.tracks[0].format).config.parameter_sets
    assert depacketizer_sets == video.parameter_sets and all(depacketizer_sets)  # from the SDP alone
    ts0 = model.tracks[0].segment.ts0
    sent = []
    for i, unit in enumerate(units):
        nalus = split_length_prefixed(unit.data)
        assert not {nal_type(n) for n in nalus} & {32, 33, 34}
        sent.append((((unit.timestamp - ts0) & 0xFFFFFFFF) // TICKS, [*depacketizer_sets, *nalus] if i == 0 else nalus))
    assert [pts for pts, _ in sent[: len(video.pts)]] == video.pts and units[0].keyframe
    decoded = decode("hevc", sent)
    assert [pts for pts, _ in decoded] == sorted(pts for pts, _ in sent)
    assert all(number == pts % len(video.frames) for pts, number in decoded if number is not None)


async def test_h265_bframes_sdp_only_camera_plays_through_the_simulator():
    spec = camera("hevc", width=WIDTH, height=HEIGHT, bframes=2, codec="h265", parameter_sets="sdp",
                  audio_packet_ms=64, faults=Faults(video_sr_delay_s=0.2, audio_sr_delay_s=0.6))
    async with SimulatorServer([spec], port=0) as server:
        report = await probe(ClientConfig(server.url("hevc"), transport="tcp"), seconds=1.2)
    assert report.error is None
    video, sound = report.tracks[0], report.tracks[1]
    assert video.codec.lower().startswith(("h265", "hevc")) and video.units >= 20 and video.malformed == 0
    assert sound.units >= 12 and video.sender_reports >= 1 and sound.sender_reports >= 1
