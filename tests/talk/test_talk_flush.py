"""The end of a talkspurt is sent: the resampler's tail, the last short packet, AAC's partial frame
and the frames its encoder holds; and AAC's priming frame does not delay the talker's first sample.
What was sent is decoded (G.711 by `opticlink.dsp.g711`, AAC by PyAV) and laid on the RTP clock."""

import time
import wave

import av
import numpy as np
import pytest

from opticlink import cli
from opticlink.dsp.g711 import decode_g711
from opticlink.rtp.formats import RtpFormat, create_depacketizer
from opticlink.rtp.formats.aac import aac_fmtp, audio_specific_config
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import RtpPacket
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.server import SimulatorServer
from opticlink.talk.encoder import TalkEncoder
from opticlink.talk.pacing import TalkPacer
from opticlink.talk.session import TalkSession
from tests.conftest import small_camera


def _aac(rate: int) -> RtpFormat:
    return RtpFormat(97, "MPEG4-GENERIC", rate, 1, aac_fmtp(audio_specific_config(rate, 1)))


FORMATS = {"PCMU": RtpFormat(0, "PCMU", 8000), "PCMA": RtpFormat(8, "PCMA", 8000),
           "L16": RtpFormat(97, "L16", 16000), "AAC": _aac(16000), "AAC-8k": _aac(8000)}
CHUNKS = (317, 160, 401, 1, 999, 64, 2)  # odd sizes, as no sender would choose
LEVEL = 0.5
THRESHOLD = LEVEL / 4  # a 440 Hz sine passes it within 0.1 ms of its start


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    """A burst from t=0: its first and last samples are where it starts and ends."""
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * LEVEL * 32767).astype(np.int16)


def _encode(encoder: TalkEncoder, pcm: np.ndarray, rate: int) -> list[bytes]:
    packets, i, k = [], 0, 0
    while i < len(pcm):
        size = CHUNKS[k % len(CHUNKS)]
        packets += encoder.encode(pcm[i : i + size], rate)[0]
        i, k = i + size, k + 1
    return packets


def played(fmt: RtpFormat, packets: list[RtpPacket], zero: int, seconds: float) -> tuple[np.ndarray, int]:
    """What a camera playing by timestamp plays, as floats on its clock; and where `zero` (the
    talker's first sample) is in it. AAC's priming frame, stamped before `zero`, falls before it."""
    depacketizer = create_depacketizer(fmt)
    units = [u for i, p in enumerate(packets) for u in depacketizer.push(BufferedPacket(p, i, 0.0))]
    origin = 4096
    out = np.zeros(origin + round(seconds * fmt.clock_rate) + 4096)
    decoder = None
    for unit in units:
        at = origin + (((unit.timestamp - zero + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
        if fmt.encoding == "MPEG4-GENERIC":
            if decoder is None:
                decoder = av.CodecContext.create("aac", "r")
                decoder.extradata = unit.config.extra
            frames = [f.to_ndarray().reshape(-1) for f in decoder.decode(av.Packet(unit.data))]
            pcm = np.concatenate(frames) if frames else np.zeros(0)
        elif fmt.encoding == "L16":
            pcm = np.frombuffer(unit.data, ">i2") / 32768
        else:
            pcm = decode_g711(unit.data, fmt.encoding.lower()) / 32768
        assert at >= 0 and at + len(pcm) <= len(out)
        out[at : at + len(pcm)] += pcm
    return out, origin


def extent(out: np.ndarray, origin: int, rate: int) -> tuple[float, float]:
    """Where the burst starts and ends (seconds from the talker's first sample)."""
    loud = np.flatnonzero(np.abs(out) > THRESHOLD)
    assert len(loud), "nothing was heard"
    return (loud[0] - origin) / rate, (loud[-1] + 1 - origin) / rate


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_sample_of_a_talkspurt_is_sent_and_its_first_plays_on_time(name, rate):
    fmt, seconds = FORMATS[name], 2.0
    encoder = TalkEncoder(fmt, 20)
    zero = encoder.timestamp
    packets = _encode(encoder, tone(seconds, rate), rate) + encoder.flush()
    out, origin = played(fmt, [RtpPacket.parse(p) for p in packets], zero, seconds)
    start, end = extent(out, origin, fmt.clock_rate)
    assert abs(start) <= 0.005, f"the burst starts {start * 1000:.1f} ms late"
    assert seconds * 0.99 <= end <= seconds + 0.005, f"{end:.3f} s of {seconds} s heard"
    assert encoder.pending == 0 and encoder.accepted == seconds * fmt.clock_rate
    assert (encoder.timestamp - zero) & 0xFFFFFFFF == encoder.accepted  # the next talkspurt follows


@pytest.mark.parametrize("gap", [500, 8000])
@pytest.mark.parametrize(("name", "rate"), [("PCMU", 16000), ("L16", 8000), ("AAC", 8000), ("AAC", 16000)])
def test_after_a_pause_or_a_flush_the_encoder_goes_on_and_each_talkspurt_is_whole(name, rate, gap):
    """A pause (`skip`) sends the first talkspurt's end before the gap; a flush (the talker let go)
    leaves the encoder ready for the next talker, a new resampler and AAC encoder behind it."""
    fmt = FORMATS[name]
    cam = fmt.clock_rate
    encoder = TalkEncoder(fmt, 20)
    zero = encoder.timestamp
    packets = _encode(encoder, tone(1.0, rate), rate)
    packets += encoder.skip(gap)  # a pause mid-talk
    second = (cam + gap) / cam
    packets += _encode(encoder, tone(1.0, rate, hz=660), rate)
    assert (encoder.timestamp + encoder.pending - zero) & 0xFFFFFFFF == encoder.accepted + gap
    packets += encoder.flush()  # the talker lets go; someone talks again 1 s later
    packets += encoder.skip(cam)
    third = second + 2.0
    packets += _encode(encoder, tone(0.5, rate, hz=550), rate) + encoder.flush()
    assert (encoder.timestamp - zero) & 0xFFFFFFFF == encoder.accepted + gap + cam
    parsed = [RtpPacket.parse(p) for p in packets]
    out, origin = played(fmt, parsed, zero, third + 1)
    bursts = [(0.0, 1.0), (second, second + 1.0), (third, third + 0.5)]
    for i, (begin, end) in enumerate(bursts):
        lo, hi = origin + round((begin - 0.01) * cam), origin + round((end + 0.01) * cam)
        window = np.zeros_like(out)
        window[lo:hi] = out[lo:hi]
        start, stop = extent(window, origin, cam)
        assert abs(start - begin) <= 0.005, f"talkspurt {i} starts {(start - begin) * 1000:.1f} ms off"
        assert stop - begin >= 0.99 * (end - begin) and stop <= end + 0.005, f"talkspurt {i} ends at {stop:.3f} s"
    if fmt.encoding in ("PCMU", "PCMA"):
        assert [p.marker for p in parsed].count(True) == 3  # each talkspurt marked (RFC 3551)


class _Client:
    def __init__(self) -> None:
        self.sent: list[RtpPacket] = []

    def send_rtp(self, track: int, data: bytes) -> None:
        self.sent.append(RtpPacket.parse(data))

    def send_rtcp(self, track: int, data: bytes) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now


def test_a_session_paces_what_the_resampler_holds_and_sends_its_tail_when_the_talker_stops(monkeypatch):
    """16 kHz talk to an 8 kHz camera: soxr holds up to ~130 ms, which is no reason to skip; the
    echo canceller's reference (`on_sent`) has every sample sent, at its timestamp's slot."""
    clock = _Clock()
    monkeypatch.setattr("opticlink.talk.session.asyncio.get_running_loop", lambda: clock)
    reference: list[tuple[np.ndarray, int, float]] = []
    session = TalkSession("cam1", ClientConfig("rtsp://127.0.0.1:1/cam1"), keep_open=True,
                          on_sent=lambda pcm, rate, slot: reference.append((pcm, rate, slot)))
    client = _Client()
    session.client, session.talker = client, "tester"  # type: ignore[assignment]
    session.encoder = TalkEncoder(FORMATS["PCMU"], 20)
    session.pacer = TalkPacer(8000)
    zero = session.encoder.timestamp
    for spurt, (begin, seconds) in enumerate([(0.0, 1.5), (2.0, 0.6)]):  # a pause, then the talker lets go
        pcm = tone(seconds, 16000, hz=440 + 200 * spurt)
        for i in range(0, len(pcm), 320):
            clock.now = 100.0 + begin + i / 16000
            session.push("tester", pcm[i : i + 320], 16000)
    session.stop("tester")
    assert session.pacer.skips == 1  # the pause alone
    out, origin = played(FORMATS["PCMU"], client.sent, zero, 3.0)
    for begin, seconds in [(0.0, 1.5), (2.0, 0.6)]:
        lo, hi = origin + round((begin - 0.01) * 8000), origin + round((begin + seconds + 0.01) * 8000)
        window = np.zeros_like(out)
        window[lo:hi] = out[lo:hi]
        start, end = extent(window, origin, 8000)
        assert abs(start - begin) <= 0.005 and seconds * 0.99 <= end - begin <= seconds + 0.005
    echo = np.zeros_like(out)  # the reference, laid by slot
    anchor = session.pacer.anchor
    for pcm, rate, slot in reference:
        at = origin + round((slot - anchor) * rate)
        echo[at : at + len(pcm)] += pcm / 32768
    assert sum(len(pcm) for pcm, _, _ in reference) == sum(len(p.payload) for p in client.sent)
    assert np.max(np.abs(echo - out)) < 0.02  # G.711's quantization, no more
    assert (session.encoder.timestamp - zero) & 0xFFFFFFFF == session.pacer.count


def _wav(path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.astype("<i2").tobytes())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["PCMU", "PCMA", "AAC", "L16"])
async def test_opticlink_talk_delivers_a_whole_file_to_the_simulators_speaker(name, tmp_path):
    fmt, seconds = FORMATS[name], 3.0
    _wav(tmp_path / "talk.wav", tone(seconds, 16000), 16000)
    spec = small_camera("cam1")
    spec.backchannel_formats = (fmt,)
    async with SimulatorServer([spec], port=0) as sim:
        args = cli.build_parser().parse_args(["talk", sim.url("cam1"), "--file", str(tmp_path / "talk.wav")])
        assert await cli._talk(args) == 0
    packets = [p for _, p in spec.sink.packets]
    assert packets and {p.payload_type for p in packets} == {fmt.payload_type}
    # sample 0 of the talk: the first packet's, or for AAC a frame after its priming frame
    zero = (packets[0].timestamp + (1024 if fmt.encoding == "MPEG4-GENERIC" else 0)) & 0xFFFFFFFF
    out, origin = played(fmt, packets, zero, seconds + 1)
    start, end = extent(out, origin, fmt.clock_rate)
    assert abs(start) <= 0.005
    assert end - start >= 0.99 * seconds, f"{end - start:.3f} s of {seconds} s delivered"
    if fmt.encoding == "MPEG4-GENERIC":  # whole frames, less the priming frame
        samples = 1024 * (len(packets) - 1)
    else:
        samples = sum(len(p.payload) for p in packets) // (2 if fmt.encoding == "L16" else 1)
    # at most AAC's padding more than the burst as played: a sender stalled over the pacer's `late` (a
    # loaded machine) has its next frames start later, the time between sent as silence (AAC) or skipped
    assert seconds <= samples / fmt.clock_rate <= max(seconds, end - start) + 0.07


async def test_a_talk_file_whose_sender_stalls_is_delivered_whole(tmp_path, monkeypatch):
    # the event loop held 0.3 s (a loaded machine) halfway: the sender then caught up in a burst, the
    # pacer dropped its frames as too early, and the camera's speaker lost 0.2 s of the file
    fmt, seconds = FORMATS["PCMU"], 3.0
    _wav(tmp_path / "talk.wav", tone(seconds, 16000), 16000)
    spec = small_camera("cam1")
    spec.backchannel_formats = (fmt,)
    push, pushed = TalkSession.push, []

    def stalling(self, *args, **kwargs):
        pushed.append(None)
        if len(pushed) == 75:
            time.sleep(0.3)
        return push(self, *args, **kwargs)

    monkeypatch.setattr(TalkSession, "push", stalling)
    async with SimulatorServer([spec], port=0) as sim:
        args = cli.build_parser().parse_args(["talk", sim.url("cam1"), "--file", str(tmp_path / "talk.wav")])
        assert await cli._talk(args) == 0
    packets = [p for _, p in spec.sink.packets]
    assert len(pushed) == 150
    assert sum(len(p.payload) for p in packets) == seconds * fmt.clock_rate  # every sample of the file
