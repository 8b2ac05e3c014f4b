"""A recording's first frames wait until the sync engine's placement of the picture is steady."""

import itertools

from opticlink.media import AudioConfig, MediaFrame, VideoConfig
from opticlink.record.edges import SETTLE_MAX_S, SETTLE_S, RunStart

VIDEO = VideoConfig("h264", (bytes.fromhex("6742c01e95a0a0fd01"), bytes.fromhex("68ce3c80")))
AUDIO = AudioConfig("pcmu", 8000)


def picture(i: int, moved_us: int) -> MediaFrame:
    """The i-th picture (25 fps) as the engine placed it: `moved_us` off its own clock."""
    return MediaFrame(0, "video", "h264", i * 40_000 + moved_us, 40_000, i % 25 == 0, b"", VIDEO,
                      rtp_timestamp=(7 + i * 3600) & 0xFFFFFFFF)


def sound(i: int) -> MediaFrame:
    return MediaFrame(1, "audio", "pcmu", i * 20_000, 20_000, True, b"", AUDIO, rtp_timestamp=i * 160)


def frames(seconds: float, moved) -> list[MediaFrame]:
    """Pictures and sound in timeline order; `moved(t)` is how far the engine moved the picture at t."""
    out = [picture(i, moved(i * 0.04)) for i in range(int(seconds * 25))]
    out += [sound(i) for i in range(int(seconds * 50))]
    return sorted(out, key=lambda f: f.pts_us)


def run(stream: list[MediaFrame]) -> list[MediaFrame]:
    """The frames placed when the hold ends, `stream` pushed frame by frame."""
    start = RunStart()
    for frame in stream:
        if (placed := start.push(frame)) is not None:
            return placed
    return start.place()


def test_a_picture_still_moving_toward_the_sound_is_held_until_it_stops_and_then_placed_evenly():
    # the engine pulls the picture 130 ms earlier over its first 1.8 s (a camera whose first frames came late)
    placed = run(frames(4.0, lambda t: round(130_000 * max(0.0, 1 - t / 1.8))))
    span = placed[-1].pts_us - placed[0].pts_us
    assert 1.75e6 + 0.5e6 <= span < 3.0e6  # held past SETTLE_S until the placement was steady for half a second
    pictures = [f.pts_us for f in placed if f.kind == "video"]
    assert {b - a for a, b in itertools.pairwise(pictures)} == {40_000}
    assert pictures[0] == 0  # where the engine placed them in the end: in sync from the first frame
    assert [f.pts_us for f in placed if f.kind == "audio"] == [i * 20_000 for i in range(len(pictures) * 2)][
        : sum(f.kind == "audio" for f in placed)]  # the sound as the engine placed it


def test_a_steady_start_is_held_only_a_second_and_a_stream_that_never_settles_at_most_five():
    placed = run(frames(3.0, lambda t: 0))
    assert placed[-1].pts_us - placed[0].pts_us == SETTLE_S * 1e6
    placed = run(frames(8.0, lambda t: round(20_000 * t)))  # slewing for ever: let go at the bound
    assert placed[-1].pts_us - placed[0].pts_us <= SETTLE_MAX_S * 1e6 + 40_000
    placed = run([sound(i) for i in range(200)])  # sound alone: nothing to settle
    assert placed[-1].pts_us - placed[0].pts_us == SETTLE_S * 1e6


def test_a_run_stopped_before_the_b_frames_of_its_last_picture_ends_at_the_picture_before_them():
    from opticlink.record.edges import RunEnd

    def b_frames(count: int) -> list[MediaFrame]:
        """I P B B P B B ... in decode order: each P is sent before the two B-frames shown before it."""
        order = [0] + [i for p in range(3, count + 3, 3) for i in (p, p - 2, p - 1)]
        return [picture(i, 0) for i in order if i < count + 3][:count]

    for cut in (9, 10, 11):  # after a P (its B-frames lost), after its first B, after both
        end = RunEnd()
        out = [old for f in b_frames(cut) for old in end.push(f)] + end.close()
        shown = sorted(f.pts_us // 40_000 for f in out)
        assert shown == list(range(len(shown))), (cut, shown)  # no hole in what is shown
        assert len(shown) >= cut - 3
