import asyncio

import pytest

from opticlink.hub import FrameBus
from opticlink.media import AudioConfig, MediaFrame, VideoConfig

VIDEO = VideoConfig("h264", (b"\x67", b"\x68"))
AUDIO = AudioConfig("pcmu", 8000)


def video(ms: int, key: bool = False, size: int = 1000) -> MediaFrame:
    return MediaFrame(0, "video", "h264", ms * 1000, 40_000, key, bytes(size), VIDEO)


def audio(ms: int) -> MediaFrame:
    return MediaFrame(1, "audio", "pcmu", ms * 1000, 20_000, True, bytes(160), AUDIO)


def test_each_subscription_gets_every_frame_once_and_a_filter_runs_once_per_frame():
    bus = FrameBus("cam")
    calls = []

    def echo(frame: MediaFrame, now: float) -> MediaFrame:
        calls.append(frame.pts_us)
        return MediaFrame(frame.track, frame.kind, frame.codec, frame.pts_us, frame.duration_us, frame.keyframe,
                          b"clean", frame.config)

    bus.add_filter("echo", echo)
    raw = bus.subscribe("recorder", policy="gaps")
    clean = bus.subscribe("live", after="echo")
    other = bus.subscribe("live2", after="echo")
    for i in range(10):
        bus.publish(audio(i * 20), 0.0)
    assert calls == [i * 20_000 for i in range(10)]
    assert [q.frame.data for q in raw.get_nowait()] == [bytes(160)] * 10
    assert [q.frame.data for q in clean.get_nowait()] == [b"clean"] * 10
    assert len(other.get_nowait()) == 10
    with pytest.raises(ValueError):
        bus.subscribe("x", after="nothing")


def test_a_full_skip_queue_drops_video_to_the_next_keyframe_and_keeps_audio():
    bus = FrameBus("cam")
    live = bus.subscribe("live", max_frames=40)
    for i in range(30):
        bus.publish(video(i * 40, key=i % 25 == 0), i * 0.04)
        bus.publish(audio(i * 40), i * 0.04)
    frames = [q.frame for q in live.get_nowait()]
    videos = [f for f in frames if f.kind == "video"]
    assert videos and videos[0].keyframe and videos[0].pts_us == 25 * 40_000
    assert live.dropped > 0
    assert not live.gaps  # skipping is the policy, not a gap


def test_a_full_recorder_queue_counts_a_gap_and_resumes_at_a_keyframe():
    bus = FrameBus("cam")
    rec = bus.subscribe("recorder", policy="gaps", max_frames=10)
    for i in range(20):
        bus.publish(video(i * 40, key=i % 25 == 0), 0.0)
    assert [q.frame.pts_us // 40_000 for q in rec.get_nowait()] == list(range(10))
    for i in range(20, 40):
        bus.publish(video(i * 40, key=i % 25 == 0), 0.0)
    assert [q.frame.pts_us // 40_000 for q in rec.get_nowait()] == list(range(25, 35))
    gaps = rec.take_gaps()
    assert len(gaps) == 2  # 10..24 closed by the keyframe, 35..39 still open
    assert (gaps[0].start_us, gaps[0].end_us, gaps[0].frames) == (10 * 40_000, 25 * 40_000, 15)
    assert (gaps[1].start_us, gaps[1].frames) == (35 * 40_000, 5)
    assert rec.dropped == 20
    assert [g.frames for g in rec.take_gaps()] == [5]  # the open one stays until it closes


def test_get_waits_for_frames_and_returns_empty_once_closed():
    async def main() -> None:
        bus = FrameBus("cam")
        sub = bus.subscribe("live")
        waiter = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)
        assert not waiter.done()
        bus.publish(video(0, True), 0.0)
        assert [q.frame.pts_us for q in await waiter] == [0]
        bus.unsubscribe(sub)
        assert await sub.get() == []
        bus.publish(video(40), 0.0)
        assert len(sub) == 0

    asyncio.run(main())


def test_an_inline_consumer_takes_each_frame_as_it_is_published_and_one_that_raises_harms_no_other():
    bus = FrameBus("cam")
    bus.add_filter("echo", lambda frame, now: MediaFrame(frame.track, frame.kind, frame.codec, frame.pts_us,
                                                         frame.duration_us, frame.keyframe, b"clean", frame.config))
    taken: list[tuple[bytes, float]] = []
    live = bus.subscribe_inline("live", lambda frame, now: taken.append((frame.data, now)), after="echo")

    def broken(frame: MediaFrame, now: float) -> None:
        raise RuntimeError("a bug")

    failing = bus.subscribe_inline("broken", broken)
    recorder = bus.subscribe("recorder", policy="gaps")
    bus.publish(video(0, key=True), 1.0)
    assert taken == [(b"clean", 1.0)]  # at once, with no task run in between
    bus.publish(audio(0), 2.0)
    assert taken == [(b"clean", 1.0), (b"clean", 2.0)]
    assert failing.errors == 2
    assert len(recorder.get_nowait()) == 2
    bus.unsubscribe(live)
    bus.publish(audio(20), 3.0)
    assert len(taken) == 2 and live.closed
    with pytest.raises(ValueError):
        bus.subscribe_inline("x", print, after="nothing")
