"""The simulator's clip cache is shared by every process of the suite: two that build the same clip
at once (a fresh machine's first run) must both end with it. A clean-clone run failed when both wrote
one temporary file: the first renamed it away and the second found nothing to rename."""

import dataclasses
import threading

from opticlink.sim.media import VideoClip, synthetic_video


class _Paused(list):
    """Frames whose writing stops at the second until `go` is set (the first pass, for their counts,
    runs through)."""

    def __init__(self, frames, reached: threading.Event, go: threading.Event):
        super().__init__(frames)
        self.passes = 0
        self.reached, self.go = reached, go

    def __iter__(self):
        self.passes += 1
        for index, frame in enumerate(super().__iter__()):
            if self.passes == 2 and index == 1:
                self.reached.set()
                self.go.wait(10)
            yield frame


def test_two_writers_of_one_clip_at_once_both_finish_and_leave_a_whole_clip(tmp_path):
    clip = synthetic_video(64, 48, 25, seconds=1, bitrate=50_000)
    path = tmp_path / "same.clip"
    reached, go = threading.Event(), threading.Event()
    slow = dataclasses.replace(clip, frames=_Paused(clip.frames, reached, go))
    failed: list[BaseException] = []

    def first() -> None:
        try:
            slow.save(path)
        except BaseException as exc:  # the failure is what the test reports
            failed.append(exc)

    writer = threading.Thread(target=first)
    writer.start()
    assert reached.wait(10)
    clip.save(path)  # the second writer, whole, while the first is halfway
    go.set()
    writer.join(10)
    assert failed == []
    assert VideoClip.load(path).frames == clip.frames
    assert [p.name for p in tmp_path.iterdir()] == ["same.clip"]  # no temporary file left behind
