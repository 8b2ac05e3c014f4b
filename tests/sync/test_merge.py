from opticlink.media import AudioConfig, MediaFrame
from opticlink.sync import FrameMerger

CONFIG = AudioConfig("pcmu", 8000)


def frame(track: int, pts_ms: int) -> MediaFrame:
    return MediaFrame(track, "video" if track == 0 else "audio", "pcmu", pts_ms * 1000, 0, True, b"", CONFIG)


def test_frames_come_out_in_presentation_order_once_the_other_track_caught_up():
    merger = FrameMerger(hold=1.0)
    assert merger.push(frame(0, 100), 0.0) == [frame(0, 100)]  # no other track yet
    assert merger.push(frame(1, 80), 0.01) == [frame(1, 80)]
    assert merger.push(frame(0, 140), 0.02) == []  # audio has only reached 80
    out = merger.push(frame(1, 100), 0.03) + merger.push(frame(1, 150), 0.04)
    assert [f.pts_us // 1000 for f in out] == [100, 140]


def test_a_silent_track_holds_the_others_no_longer_than_the_hold():
    merger = FrameMerger(hold=0.2)
    merger.push(frame(1, 0), 0.0)
    merger.push(frame(0, 0), 0.0)
    assert merger.push(frame(0, 40), 0.05) == []
    assert merger.deadline() == 0.25
    assert [f.pts_us for f in merger.poll(0.25)] == [40_000]


def test_b_frames_keep_their_decode_order_and_interleave_with_audio_by_decode_time():
    merger = FrameMerger(hold=1.0)
    video = [(0, -80), (120, -40), (40, 0), (80, 40), (240, 80), (160, 120), (200, 160)]  # (pts, dts) ms
    out = []
    for i, (pts, dts) in enumerate(video):
        f = frame(0, pts)
        f.dts_us = dts * 1000
        out += merger.push(f, i * 0.04)
        out += merger.push(frame(1, i * 40 - 80), i * 0.04 + 0.001)
    out += merger.flush()
    assert [f.pts_us // 1000 for f in out if f.track == 0] == [p for p, _ in video]  # never reordered
    decode = [f.decode_us for f in out]
    assert decode == sorted(decode)
