from opticlink.live.feed import LiveFeed, Viewer
from opticlink.live.protocol import FRAME, KEYFRAME, decode_frame_header
from opticlink.media import AudioConfig, MediaFrame, VideoConfig

SPS = bytes.fromhex("6742c01ed9005005bb011000000300100000030320f162e480")
VIDEO = VideoConfig("h264", (SPS, bytes.fromhex("68cb8cb2")))
AUDIO = AudioConfig("pcmu", 8000)


def video(pts_ms: int, key: bool = False) -> MediaFrame:
    data = b"\x00\x00\x00\x02\x65\x00" if key else b"v"
    return MediaFrame(0, "video", "h264", pts_ms * 1000, 40000, key, data, VIDEO)


def audio(pts_ms: int) -> MediaFrame:
    return MediaFrame(1, "audio", "pcmu", pts_ms * 1000, 20000, True, b"\xff" * 160, AUDIO)


def drain(viewer: Viewer) -> list[bytes]:
    out = [m.data for m in viewer._queue]
    viewer._queue.clear()
    return out


def test_a_new_viewer_starts_with_the_config_and_the_latest_group_of_pictures():
    hub = LiveFeed("cam")
    for i, key in enumerate([True, False, False, True, False]):
        hub.publish(video(i * 40, key), 0.0)
        hub.publish(audio(i * 40), 0.0)
    viewer = Viewer()
    hub.attach(viewer, 1.0)
    messages = drain(viewer)
    assert messages[0][0] == 1  # config first
    frames = [decode_frame_header(m) for m in messages[1:]]
    assert [(track, flags & KEYFRAME, pts) for track, flags, pts, _ in frames] == [(0, 1, 120000.0), (0, 0, 160000.0)]


def test_a_slow_viewer_loses_video_to_the_next_keyframe_keeps_its_audio_and_slows_nobody():
    hub = LiveFeed("cam")
    slow, fast = Viewer(max_delay=0.5), Viewer(max_delay=0.5)
    hub.attach(slow, 0.0)
    hub.attach(fast, 0.0)
    received = []
    for i in range(100):  # 4 s of media; the slow viewer reads once, after 1.2 s
        now = i * 0.04
        hub.publish(video(i * 40, key=i % 25 == 0), now)
        hub.publish(audio(i * 40), now)
        assert sum(m[0] == FRAME for m in drain(fast)) == 2  # the fast viewer gets every frame, at once
        if i == 30:
            received = [m for m in slow._queue]
            slow._queue.clear()
            slow._bytes = 0
    assert slow.dropped_video > 0 and fast.dropped_video == 0
    audio_pts = [decode_frame_header(m.data)[2] for m in received if not m.video and m.data[0] == FRAME]
    assert audio_pts == [i * 40000.0 for i in range(31)]  # its audio, all of it
    video_frames = [m for m in received if m.video]
    assert video_frames and video_frames[0].keyframe  # its video restarts at a keyframe
    after = [m for m in slow._queue if m.video]
    assert not after or after[0].keyframe  # and again after the next stall


def test_audio_queued_for_a_viewer_that_never_reads_is_bounded():
    hub = LiveFeed("cam")
    stuck = Viewer(max_audio_delay=2.0)
    hub.attach(stuck, 0.0)
    for i in range(500):
        hub.publish(audio(i * 20), i * 0.02)
    assert len(stuck._queue) <= 102 and stuck.dropped_audio >= 398


def test_audio_can_be_switched_off_for_live_viewers():
    hub = LiveFeed("cam", audio=False)
    viewer = Viewer()
    hub.attach(viewer, 0.0)
    hub.publish(video(0, True), 0.0)
    hub.publish(audio(0), 0.0)
    assert all(m[0] != FRAME or decode_frame_header(m)[0] == 0 for m in drain(viewer))


async def test_a_closed_viewer_stops_waiting():
    viewer = Viewer()
    viewer.close()
    assert await viewer.get() == []
