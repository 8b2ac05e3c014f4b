"""Recorded camera traffic replayed through the receive path (`CameraIngest` → `SyncEngine`).

The corpora here were made by `opticlink probe --save` (tests/corpus/make_corpora.py) against the
built-in simulator and Debian's GStreamer RTSP server. A user's bug report becomes a test by
dropping their file here and saying what must hold.
"""

from __future__ import annotations

import contextlib
import gzip
import statistics
import struct
import zlib
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opticlink.camera import corpus as corpus_module
from opticlink.camera.corpus import (
    MAGIC,
    Corpus,
    CorpusError,
    Packet,
    TrafficRecorder,
    from_bytes,
    load,
    redact_text,
    redact_url,
    replay,
)
from opticlink.errors import RtspError
from opticlink.rtsp.client import ClientConfig, Failed, RtpReceived
from opticlink.rtsp.sdp import SessionDescription

HERE = Path(__file__).parent
CORPORA = sorted(HERE.glob("*.olc"))
SECRET = b"s3cret-Pa55"  # the password of sim_audio_40ms_auth's camera (make_corpora.py)
AV_TOLERANCE_MS = 5.0
SETTLE_S = 0.5  # after both tracks' first Sender Report, for the engine's corrections to settle


def test_the_corpora_are_there_and_small():
    names = {p.stem for p in CORPORA}
    assert {"sim_h264_bframes_sdp_only", "sim_h265_bframes", "sim_audio_report_late",
            "sim_audio_40ms_auth"} <= names
    for path in CORPORA:
        assert path.stat().st_size < 300_000, path.name


@pytest.fixture(scope="module", params=CORPORA, ids=[p.stem for p in CORPORA])
def replayed(request):
    c = load(request.param)
    return request.param, c, replay(c)


def _unwrapped(timestamps: list[int]) -> list[int]:
    out = [timestamps[0]]
    for ts in timestamps[1:]:
        delta = (ts - out[-1]) & 0xFFFFFFFF
        out.append(out[-1] + (delta - (1 << 32) if delta >= 1 << 31 else delta))
    return out


def test_every_track_comes_out_whole(replayed):
    _, c, result = replayed
    assert {t.kind for t in c.tracks} == {"video", "audio"}
    for stats in result.tracks.values():
        assert stats.packets > 0 and stats.frames == stats.units > 0, stats
        assert stats.lost == stats.malformed == 0, stats
        assert stats.sender_reports >= 1, stats
    assert len(result.frames) == sum(s.frames for s in result.tracks.values())


def test_video_comes_in_decode_order_with_decode_times_before_presentation(replayed):
    path, _, result = replayed
    for index, stats in result.tracks.items():
        if stats.kind != "video":
            continue
        video = [f for f in result.frames if f.track == index]
        decode = [f.decode_us for f in video]
        assert all(a < b for a, b in pairwise(decode)), "decode times not strictly increasing"
        assert all(f.decode_us <= f.pts_us for f in video)
        swaps = sum(b.pts_us < a.pts_us for a, b in pairwise(video))
        if "bframes" in path.stem:
            assert swaps > len(video) // 5, "a B-frame corpus should reorder"
            assert sum(f.decode_us < f.pts_us for f in video) > len(video) // 2
        # presentation order is capture order: sorted by pts, the RTP timestamps rise
        by_pts = sorted(video, key=lambda f: f.pts_us)
        ts = _unwrapped([f.rtp_timestamp for f in by_pts])
        assert all(a < b for a, b in pairwise(ts))
        assert len({f.pts_us for f in video}) == len(video)


def test_audio_comes_in_capture_order(replayed):
    _, _, result = replayed
    for index, stats in result.tracks.items():
        if stats.kind != "audio":
            continue
        audio = [f for f in result.frames if f.track == index]
        assert all(a.pts_us < b.pts_us for a, b in pairwise(audio))
        ts = _unwrapped([f.rtp_timestamp for f in audio])
        assert all(a < b for a, b in pairwise(ts))


def test_audio_and_video_agree_once_both_have_sender_reports(replayed):
    """Each frame's timeline position against the camera's capture time (its wall clock from the
    Sender Reports) is the same for audio and video, within a few ms, once both have reports."""
    _, _, result = replayed
    first: dict[int, float] = {}
    for report in result.reports:
        first.setdefault(report.track, report.arrival)
    assert set(first) == set(result.tracks)
    settled = max(first.values()) - result.epoch + SETTLE_S
    offsets: dict[str, list[float]] = {"audio": [], "video": []}
    for f in result.frames:
        if f.wall_clock is not None and f.pts_us / 1e6 >= settled:
            offsets[f.kind].append(f.pts_us / 1e3 - f.wall_clock * 1e3)
    assert len(offsets["audio"]) > 10 and len(offsets["video"]) > 5
    reference = statistics.median(offsets["audio"])
    for kind, values in offsets.items():
        worst = max(abs(v - reference) for v in values)
        assert worst < AV_TOLERANCE_MS, f"{kind} off by {worst:.2f} ms"
    sources = {t.kind: t.source for t in result.sync.tracks}
    assert sources == {"audio": "rtcp", "video": "rtcp"}


def test_the_late_audio_report_case_starts_on_arrival_timing():
    c = load(HERE / "sim_audio_report_late.olc")
    result = replay(c)
    first = {}
    for report in result.reports:
        first.setdefault(result.tracks[report.track].kind, report.arrival - result.epoch)
    assert first["audio"] - first["video"] > 1.0


def test_the_40ms_audio_case_has_40ms_packets():
    result = replay(load(HERE / "sim_audio_40ms_auth.olc"))
    audio = [f for f in result.frames if f.kind == "audio"]
    steps = {round((b.pts_us - a.pts_us) / 1000) for a, b in pairwise(audio[10:])}
    assert steps == {40}


def test_replay_is_deterministic():
    c = load(CORPORA[0])
    a, b = replay(c), replay(c)
    assert [(f.track, f.pts_us, f.decode_us, f.data) for f in a.frames] == \
           [(f.track, f.pts_us, f.decode_us, f.data) for f in b.frames]


# Files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORPORA, ids=[p.stem for p in CORPORA])
def test_no_password_in_any_saved_file(path):
    data = path.read_bytes()
    raw = gzip.decompress(data)
    assert SECRET not in raw and SECRET not in data
    assert b"s3cret" not in raw.lower()
    c = load(path)
    assert "@" not in c.url or "REDACTED@" in c.url
    assert "authorization" not in str(c.rtsp).lower()


def test_the_password_given_in_the_url_was_redacted():
    c = load(HERE / "sim_audio_40ms_auth.olc")
    assert c.url.startswith("rtsp://REDACTED@127.0.0.1:")


@pytest.mark.parametrize("path", CORPORA, ids=[p.stem for p in CORPORA])
def test_save_load_round_trip_is_exact(path, tmp_path):
    c = load(path)
    assert c.to_bytes() == path.read_bytes()
    c.save(tmp_path / "again.olc")
    again = load(tmp_path / "again.olc")
    assert again == c
    assert [(p.track, p.rtcp, p.time, p.data) for p in again.packets] == \
           [(p.track, p.rtcp, p.time, p.data) for p in c.packets]


def test_a_truncated_file_is_a_corpus_error(tmp_path):
    data = CORPORA[0].read_bytes()
    for cut in (0, 1, 2, 10, 100, len(data) // 2, len(data) - 9, len(data) - 1):
        (tmp_path / "cut.olc").write_bytes(data[:cut])
        with pytest.raises(CorpusError):
            load(tmp_path / "cut.olc")


def test_a_file_cut_inside_the_packets_and_compressed_again_is_a_corpus_error():
    raw = gzip.decompress(CORPORA[0].read_bytes())
    for cut in (len(raw) - 1, len(raw) - 200, len(raw) // 2):
        with pytest.raises(CorpusError, match="truncated"):
            from_bytes(gzip.compress(raw[:cut]))


def test_a_gzip_bomb_stops_early():
    bomb = gzip.compress(MAGIC + b"\0" * (corpus_module._MAX_RAW + 10), compresslevel=1)
    with pytest.raises(CorpusError, match="decompressed"):
        from_bytes(bomb)


def test_other_files_are_corpus_errors(tmp_path):
    with pytest.raises(CorpusError):
        load(tmp_path / "missing.olc")
    for junk in (b"", b"hello", gzip.compress(b"hello"), gzip.compress(MAGIC + struct.pack(">I", 2) + b"[]"),
                 gzip.compress(MAGIC + struct.pack(">I", 2) + b"{}")):
        with pytest.raises(CorpusError):
            from_bytes(junk)


def _with_header(header: dict, records: bytes = b"") -> bytes:
    import json

    text = json.dumps(header).encode()
    return gzip.compress(MAGIC + struct.pack(">I", len(text)) + text + records)


def _valid_header() -> dict:
    c = load(CORPORA[0])
    c.packets = []
    return c.header()


def test_header_fields_are_checked():
    header = _valid_header()
    from_bytes(_with_header(header))  # valid with no packets
    for key, bad in (("version", 2), ("version", "1"), ("packets", -1), ("packets", 10**9), ("bytes", True),
                     ("tracks", {}), ("sdp", None), ("range", [1]), ("rtsp", [1])):
        broken = {**header, key: bad}
        with pytest.raises(CorpusError):
            from_bytes(_with_header(broken))
    track = header["tracks"][0]
    for key, bad in (("position", 99), ("payload_type", 127), ("index", "0"), ("rtp_info", {"url": 1})):
        broken = {**header, "tracks": [{**track, key: bad}, *header["tracks"][1:]]}
        with pytest.raises(CorpusError):
            from_bytes(_with_header(broken))
    unsupported = {**header, "sdp": header["sdp"].replace("H264/90000", "MP2T/90000")}
    with pytest.raises(CorpusError, match="MP2T"):
        from_bytes(_with_header(unsupported))
    with pytest.raises(CorpusError, match="not a number"):
        from_bytes(gzip.compress(MAGIC + struct.pack(">I", 3) + b"NaN"))


_VALID_RAW = gzip.decompress(CORPORA[0].read_bytes())


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
@example(b"\x1f\x8b")
@example(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")
@example(gzip.compress(b"") + b"\x1f\x8b")
@example(gzip.compress(MAGIC))
@example(gzip.compress(MAGIC + b"\xff\xff\xff\xff"))
@example(gzip.compress(MAGIC + struct.pack(">I", 5) + b'"\xff\xfe"'))
@example(gzip.compress(MAGIC + struct.pack(">I", 200) + b"[" * 200))
def test_fuzz_any_bytes_load_or_raise_corpus_error(data):
    with contextlib.suppress(CorpusError):
        from_bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_VALID_RAW) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(_VALID_RAW)))
@pytest.mark.slow
@example([(len(MAGIC) + 3, 0xFF)], len(_VALID_RAW))  # header length far beyond the data
@example([], len(_VALID_RAW) - 1)
@example([(len(_VALID_RAW) - 1, 0)], len(_VALID_RAW))
def test_fuzz_a_damaged_corpus_loads_or_raises_corpus_error(edits, cut):
    raw = bytearray(_VALID_RAW)
    for pos, value in edits:
        raw[pos] = value
    try:
        c = from_bytes(gzip.compress(bytes(raw[:cut]), compresslevel=1))
    except CorpusError:
        return
    replay(c)  # what loads also replays (the receive path takes damaged packets)


_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
                     | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_valid_header())), _json, max_size=6))
@example({"tracks": [{"index": 0, "position": 0, "payload_type": 96, "kind": "video", "url": "",
                      "direction": "recvonly", "backchannel": False, "transport": None, "rtp_info": None}] * 2})
@pytest.mark.slow
@example({"range": {"npt_start": "x"}})
def test_fuzz_hostile_header_fields_raise_corpus_error(changes):
    header = {**_valid_header(), **changes}
    with contextlib.suppress(CorpusError):
        from_bytes(_with_header(header))


# Recording --------------------------------------------------------------------------------------


def test_redaction():
    assert redact_url("rtsp://admin:pw@10.0.0.1:554/s") == "rtsp://REDACTED@10.0.0.1:554/s"
    assert redact_url("rtsp://10.0.0.1/s") == "rtsp://10.0.0.1/s"
    text = "DESCRIBE rtsp://u:p@h/x RTSP/1.0\r\nAuthorization: Digest username=\"u\", response=\"x\"\r\n"
    redacted = redact_text(text)
    assert "u:p@" not in redacted and "response" not in redacted and "REDACTED" in redacted


_AUTH = load(HERE / "sim_audio_40ms_auth.olc")


def _recorder_with_one_packet(url: str = "rtsp://admin:hunter22@127.0.0.1/x") -> TrafficRecorder:
    c = _AUTH
    recorder = TrafficRecorder.for_config(ClientConfig(url))
    recorder.sdp = SessionDescription.parse(c.sdp)
    recorder.tracks = c.tracks
    recorder._playing = True
    recorder.on_event(RtpReceived(0, c.packets[0].data, 5.0), 5.0)
    return recorder


def test_the_recorder_never_writes_a_password(tmp_path):
    recorder = _recorder_with_one_packet()
    recorder.on_event(Failed(RtspError("PLAY", "rtsp://admin:hunter22@127.0.0.1/x answered 500")), 6.0)
    recorder.save(tmp_path / "c.olc")
    raw = gzip.decompress((tmp_path / "c.olc").read_bytes())
    assert b"hunter22" not in raw and b"REDACTED" in raw
    # a password that got into the header some other way is refused, not written
    recorder.sdp.name = "camera of admin hunter22"
    with pytest.raises(CorpusError, match="password"):
        recorder.save(tmp_path / "d.olc")


def test_the_recorder_stops_at_its_caps(monkeypatch):
    monkeypatch.setattr(corpus_module, "MAX_PACKETS", 3)
    recorder = _recorder_with_one_packet()
    for i in range(5):
        recorder.on_event(RtpReceived(0, b"\x80" * 20, 5.1 + i / 10), 0.0)
    assert len(recorder.packets) == 3 and recorder.truncated == "over 3 packets"
    monkeypatch.setattr(corpus_module, "MAX_PACKETS", 100)
    recorder = _recorder_with_one_packet()
    recorder.on_event(RtpReceived(0, b"\x80" * 20, 5.0 + corpus_module.MAX_SECONDS + 1), 0.0)
    assert len(recorder.packets) == 1 and recorder.truncated is not None
    assert recorder.corpus().truncated == recorder.truncated


def test_packets_before_play_are_not_recorded():
    recorder = TrafficRecorder("rtsp://127.0.0.1/x")
    recorder.on_event(RtpReceived(0, b"\x80" * 20, 1.0), 1.0)
    assert recorder.packets == []
    with pytest.raises(CorpusError, match="never played"):
        recorder.corpus()


def test_a_corpus_object_round_trips():
    c = Corpus("rtsp://h/x", load(CORPORA[0]).sdp, load(CORPORA[0]).tracks,
               [Packet(0, False, 0.0, b"\x80" * 12), Packet(1, True, 1.25, b"")])
    assert from_bytes(c.to_bytes()) == c


async def test_probe_save_end_to_end(tmp_path, capsys):
    """`opticlink probe URL --save FILE` with the password in the URL: a loadable, replayable,
    password-free corpus."""
    from opticlink.cli import _probe, build_parser
    from opticlink.sim.server import SimulatorServer
    from tests.conftest import small_camera

    server = SimulatorServer([small_camera(username="admin", password="hunter22-x")], port=0)
    await server.start()
    try:
        out = tmp_path / "probe.olc"
        args = build_parser().parse_args(["probe", server.url("cam1", credentials=True), "--seconds", "1",
                                          "--save", str(out)])
        assert await _probe(args) == 0
    finally:
        await server.close()
    assert "saved" in capsys.readouterr().err
    raw = zlib.decompress(out.read_bytes(), 16 + zlib.MAX_WBITS)
    assert b"hunter22" not in raw
    result = replay(load(out))
    assert {f.kind for f in result.frames} == {"video", "audio"}


async def test_the_rtsp_exchange_is_kept_as_text_without_the_password(tmp_path):
    from opticlink.camera.corpus import TrafficRecorder, load
    from opticlink.camera.probe import probe
    from opticlink.rtsp.client import ClientConfig
    from opticlink.sim.server import SimulatorServer
    from tests.conftest import small_camera

    async with SimulatorServer([small_camera(username="viewer", password="s3cret-pass")], port=0) as sim:
        config = ClientConfig(sim.url("cam1", credentials=True))
        recorder = TrafficRecorder.for_config(config)
        await probe(config, 1.0, recorder=recorder)
    recorder.save(tmp_path / "c.olc")
    messages = [e for e in load(tmp_path / "c.olc").rtsp if e["step"] == "message"]
    sent = [e["text"] for e in messages if e["direction"] == "sent"]
    received = [e["text"] for e in messages if e["direction"] == "received"]
    assert any(t.startswith("DESCRIBE ") for t in sent) and any(t.startswith("PLAY ") for t in sent)
    assert any("401" in t.split("\r\n")[0] for t in received)  # the camera's challenge, and the answer to it
    assert any("Authorization: REDACTED" in t for t in sent)
    assert any("m=video" in t for t in received)  # the SDP as the camera sent it
    assert not any("s3cret-pass" in t for t in sent + received)
