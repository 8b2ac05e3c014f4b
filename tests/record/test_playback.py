"""The paced playback source: pacing, seek, pause, speed and runs, with a fake reader and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise

import pytest

from opticlink.api.playback import _still_written, parse_control
from opticlink.media import AudioConfig, MediaFrame, VideoConfig
from opticlink.record.playback import (
    END_WAIT_S,
    Config,
    Frame,
    PlaybackSource,
    Position,
    Reset,
    State,
)
from opticlink.store.recordings import SegmentRow

VIDEO = VideoConfig("h264", (b"\x67sps", b"\x68pps"))
AUDIO = AudioConfig("pcmu", 8000)
BASE = 1_700_000_000.0
RUN2_WALL = BASE + 30.0  # run 1 records [BASE, BASE + 20), run 2 [BASE + 30, BASE + 40)


@dataclass
class Rec:
    frame: MediaFrame
    wall: float
    run: int


def recording(audio_ms: int = 100) -> list[Rec]:
    """Two runs: 25 fps video with a keyframe every second, G.711 in `audio_ms` packets; each frame's
    payload names it (run, kind, index)."""
    out: list[Rec] = []
    for run, start, seconds, media0 in ((1, BASE, 20, 0), (2, RUN2_WALL, 10, 5_000_000)):
        frames: list[Rec] = []
        for i in range(seconds * 25):
            media = media0 + i * 40_000
            frames.append(Rec(MediaFrame(0, "video", "h264", media, 40_000, i % 25 == 0, f"{run}v{i}".encode(),
                                         VIDEO, dts_us=media), start + (media - media0) / 1e6, run))
        samples = audio_ms * 8
        for i in range(seconds * 1000 // audio_ms):
            media = media0 + i * audio_ms * 1000
            frames.append(Rec(MediaFrame(1, "audio", "pcmu", media, audio_ms * 1000, True, bytes(samples), AUDIO,
                                         dts_us=media), start + (media - media0) / 1e6, run))
        frames.sort(key=lambda r: (r.frame.decode_us, r.frame.track))
        out += frames
    return out


class Reader:
    """Opens at the last keyframe at or before a wall time (else the first after it), as `read_frames`."""

    def __init__(self, frames: list[Rec]) -> None:
        self.frames = frames
        self.opened: list[float] = []

    def __call__(self, wall: float):
        self.opened.append(wall)
        if wall > self.frames[-1].wall:  # past the last segment's end: nothing
            return iter(())
        keys = [i for i, r in enumerate(self.frames) if r.frame.kind == "video" and r.frame.keyframe]
        before = [i for i in keys if self.frames[i].wall <= wall]
        after = [i for i in keys if self.frames[i].wall > wall]
        if not before and not after:
            raise ValueError("no recording at or after the start")
        start = before[-1] if before else after[0]
        key_media = self.frames[start].frame.decode_us
        run = self.frames[start].run
        first = next(i for i, r in enumerate(self.frames) if r.run == run and r.frame.decode_us >= key_media)
        return iter(self.frames[first:])


def frames_of(events) -> list[MediaFrame]:
    return [e.frame for e in events if isinstance(e, Frame)]


def run_until(source: PlaybackSource, start: float, end: float, step: float = 0.005) -> list:
    events, now = [], start
    while now <= end:
        events += source.poll(now)
        now += step
    return events


def test_a_seek_sends_the_way_to_the_poster_at_once_and_then_paces_in_real_time():
    source = PlaybackSource(Reader(recording()), BASE + 5.5, now=100.0)
    first = source.poll(100.0)
    assert isinstance(first[0], Reset) and isinstance(first[1], Config)
    assert sorted(k for k, _ in first[1].tracks.values()) == ["audio", "video"]
    videos = [f for f in frames_of(first) if f.kind == "video"]
    # from the keyframe at 5.0 s to the poster: the last picture recorded at or before 5.5 s (frame 137, 5.48 s)
    assert [f.data for f in videos] == [f"1v{i}".encode() for i in range(125, 138)]
    reset = first[0]
    assert videos[-1].pts_us == reset.pts_us and reset.wall == pytest.approx(BASE + 5.48)
    assert all(f.pts_us < reset.pts_us for f in videos[:-1])
    audio = [f for f in frames_of(first) if f.kind == "audio"]
    assert audio == []  # sound is paced from the poster on, never sent early
    assert [e.state for e in first if isinstance(e, State)] == ["playing"]

    later = run_until(source, 100.005, 102.0)
    for event in later:
        if isinstance(event, Frame):
            f = event.frame
            assert f.pts_us - reset.pts_us == pytest.approx((f.wall_clock - reset.wall) * 1e6, abs=1)
    # each frame given when its time comes: the clock reached it, and not much before
    now, given = 102.005, []
    for _ in range(40):
        for f in frames_of(source.poll(now)):
            given.append((now, f))
        now += 0.01
    assert given
    for at, f in given:
        session = (at - 100.0) * 1e6
        assert session - 10_000 <= f.dts_us <= session
    pieces = [f for f in frames_of(later) if f.kind == "audio"]
    assert pieces and all(len(f.data) == 160 for f in pieces)  # 100 ms packets cut into 20 ms pieces
    assert any(isinstance(e, Position) for e in later)


def test_pause_holds_and_play_restarts_at_the_same_picture():
    reader = Reader(recording())
    source = PlaybackSource(reader, BASE + 2.0, now=0.0)
    run_until(source, 0.0, 1.0)
    position = source.position
    source.pause(1.0)
    paused = source.poll(1.0)
    assert [e.state for e in paused if isinstance(e, State)] == ["paused"]
    assert source.next_due() is None
    assert frames_of(run_until(source, 1.0, 3.0)) == []
    source.play(3.0)
    resumed = source.poll(3.0)
    reset = next(e for e in resumed if isinstance(e, Reset))
    assert reset.wall == pytest.approx(position) and reset.state == "playing"
    assert reader.opened[-1] == pytest.approx(position)
    assert reset.pts_us == pytest.approx(3.0e6)  # the session clock ran on through the pause


def test_a_seek_while_paused_shows_the_poster_and_stays_paused():
    source = PlaybackSource(Reader(recording()), BASE + 1.0, now=0.0, playing=False)
    source.poll(0.0)
    source.seek(BASE + 12.34, 0.5)
    events = source.poll(0.5)
    poster = frames_of(events)[-1]
    assert poster.data == b"1v308"  # 12.32 s: the picture recorded at 12.34 s
    assert [e.state for e in events if isinstance(e, State)] == ["paused"]
    assert frames_of(run_until(source, 0.5, 2.0)) == []


def test_other_speeds_send_no_sound_and_above_two_only_keyframes():
    source = PlaybackSource(Reader(recording()), BASE + 1.0, now=0.0, speed=2.0)
    events = run_until(source, 0.0, 2.0)
    config = next(e for e in events if isinstance(e, Config))
    assert [k for k, _ in config.tracks.values()] == ["video"]
    video = frames_of(events)
    assert all(f.kind == "video" for f in video)
    paced = [f for f in video if f.pts_us > 0]
    steps = {b.pts_us - a.pts_us for a, b in pairwise(paced)}
    assert steps == {20_000}  # 40 ms pictures every 20 ms
    assert source.position == pytest.approx(BASE + 1.0 + 4.0, abs=0.1)  # 2 s played 4 s of recording

    source.set_speed(4.0, 2.0)
    fast = run_until(source, 2.0, 4.0)
    keyed = [f for f in frames_of(fast) if f.pts_us > 2.0e6]
    assert keyed and all(f.keyframe for f in keyed)
    assert source.position == pytest.approx(BASE + 5.0 + 8.0, abs=1.1)

    source.set_speed(1.0, 4.0)
    back = run_until(source, 4.0, 5.0)
    assert any(f.kind == "audio" for f in frames_of(back))
    assert [k for k, _ in next(e for e in back if isinstance(e, Config)).tracks.values()] == ["video", "audio"]
    with pytest.raises(ValueError):
        source.set_speed(3.0, 5.0)


def test_a_gap_between_runs_is_jumped_and_the_clock_runs_on():
    source = PlaybackSource(Reader(recording()), BASE + 19.0, now=0.0)
    events = run_until(source, 0.0, 2.0)
    video = [f for f in frames_of(events) if f.kind == "video"]
    runs = [f.data[:1] for f in video]
    assert b"1" in runs and b"2" in runs
    switch = runs.index(b"2")
    last, first = video[switch - 1], video[switch]
    assert first.pts_us - last.pts_us == pytest.approx(40_000, abs=1)  # right after the last picture
    assert first.wall_clock == pytest.approx(RUN2_WALL)
    assert source.position > RUN2_WALL


def test_seeking_outside_the_recording():
    source = PlaybackSource(Reader(recording()), BASE - 100, now=0.0, playing=False)
    assert frames_of(source.poll(0.0))[-1].data == b"1v0"  # before it: its first picture
    source.seek(BASE + 1000, 1.0)
    events = source.poll(1.0)
    assert [e.state for e in events if isinstance(e, State)] == ["ended"]


def test_the_end_of_what_is_recorded_ends_the_playback_after_a_wait():
    reader = Reader(recording())
    source = PlaybackSource(reader, BASE + 38.0, now=0.0)
    events = run_until(source, 0.0, 2.5 + END_WAIT_S, step=0.05)
    assert [e.state for e in events if isinstance(e, State)] == ["playing", "ended"]
    assert len(reader.opened) >= 3  # it looked for more (the live edge) before it ended
    videos = [f.data for f in frames_of(events) if f.kind == "video"]
    assert len(videos) == len(set(videos))  # and gave nothing twice
    assert source.next_due() is None


class GrowingReader(Reader):
    """A recording still being made: each open sees what was written by then (the reader opened at a
    seek holds the files as they were), `seen` seconds more each time."""

    def __init__(self, frames: list[Rec], first_end: float, seen: float) -> None:
        super().__init__(frames)
        self.end, self.seen = first_end, seen

    def __call__(self, wall: float):
        frames = self.frames
        self.frames = [r for r in frames if r.wall < self.end]
        try:
            return super().__call__(wall)
        finally:
            self.frames = frames
            self.end += self.seen


def test_a_reader_that_ends_where_more_was_recorded_since_carries_on_without_a_pause():
    # playing near the live edge: the files read at the seek end, later ones hold more; no freeze between
    reader = GrowingReader(recording(), BASE + 3.0, seen=2.0)
    source = PlaybackSource(reader, BASE + 1.0, now=0.0)
    sent: list[tuple[float, MediaFrame]] = []
    now = 0.0
    while now <= 6.0:
        sent += [(now, f) for f in frames_of(source.poll(now)) if f.kind == "video"]
        now += 0.005
    later = [(at, f) for at, f in sent if at > 0.0]  # after the way to the poster
    assert len(reader.opened) >= 3
    assert max(b[0] - a[0] for a, b in pairwise(later)) < 0.05  # every picture on time: none waited a second
    assert all(b[1].pts_us - a[1].pts_us == 40_000 for a, b in pairwise(later))


def test_frames_of_a_segment_just_begun_are_placed_one_wall_second_per_media_second():
    # indexed at its start only (its first flush is still to come): without this, every frame read from
    # its file would carry its start's wall time, and a player would show one time for seconds
    row = SegmentRow(1, "cam1", 1, "cam1/x.mov", "writing", BASE, BASE, 7_000_000, 7_000_000, "server", 0, 0,
                     "h264", "pcmu")
    assert row.wall_at(9_500_000) == BASE  # as the index has it
    assert _still_written(row).wall_at(9_500_000) == pytest.approx(BASE + 2.5)
    flushed = replace(row, end_wall=BASE + 1.0, media_end_us=8_000_000)
    assert _still_written(flushed) is flushed  # indexed since: its own mapping
    done = replace(row, state="done")
    assert _still_written(done) is done


def test_a_lead_sends_frames_that_long_before_they_are_due_with_their_times_unchanged():
    # a follower in synchronized playback holds its pictures until the leader's clock reaches them
    source = PlaybackSource(Reader(recording()), BASE + 5.5, now=100.0)
    run_until(source, 100.0, 101.0)
    source.set_lead(0.3)
    now, given = 101.005, []
    for _ in range(100):
        given += [(now, f) for f in frames_of(source.poll(now))]
        now += 0.01
    steady = [(at, f) for at, f in given if at > 101.05]  # after the burst that takes up the lead
    assert steady
    for at, f in steady:
        session = (at - 100.0) * 1e6
        assert session + 300_000 - 10_000 <= f.dts_us <= session + 300_000
    stamps = [f.dts_us for _, f in given if f.kind == "video"]
    assert all(b - a == 40_000 for a, b in pairwise(stamps))  # the same times as without a lead
    with pytest.raises(ValueError):
        source.set_lead(1.5)


def test_a_lead_is_a_control_message_of_at_most_a_second():
    assert parse_control('{"action": "lead", "value": 0.3}', BASE) == ("lead", 0.3)
    for bad in ('{"action": "lead", "value": 2}', '{"action": "lead", "value": -0.1}',
                '{"action": "lead", "value": true}', '{"action": "lead"}'):
        with pytest.raises(ValueError):
            parse_control(bad, BASE)
