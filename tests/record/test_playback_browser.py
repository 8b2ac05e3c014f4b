"""Playback of a recording in headless Chromium, through the live player: seek shows the frame recorded
at that time, and 1x playback plays without an underrun."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import av_drift_detector as avd
import numpy as np
import pytest

from opticlink.record.reader import read_frames
from opticlink.rtp.formats import h264
from opticlink.store import Database
from opticlink.store.recordings import Recordings
from tests.auth.helpers import sign_in
from tests.live.test_player import browser_page, camera_and_service, pixels

PLAYER = "document.getElementById('player')"
PLAY_S = 6.0  # played at 1x: long enough for the sound to run dry if it were going to


def frame_id(gray: np.ndarray) -> int | None:
    gray = np.ascontiguousarray(gray.astype(np.uint8))
    stamp = avd.read_frame(gray.tobytes(), gray.shape[1], gray.shape[0])
    return None if stamp is None else int(stamp["frame_id"])


def recorded_frame_at(root: Path, recordings: Recordings, wall: float) -> tuple[int, float]:
    """(frame number, recorded wall time) of the picture recorded at or just before `wall`, decoded from
    the segment files as a player would (from the keyframe before it)."""
    frames = []
    for recorded in read_frames(root, recordings.segments("cam1", wall - 400, wall + 60), wall):
        if recorded.frame.kind != "video":
            continue
        if recorded.wall > wall:
            break
        frames.append(recorded)
    target = max(frames, key=lambda r: r.frame.pts_us)
    sps, pps = target.frame.config.parameter_sets
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = h264.avc_decoder_configuration(sps, pps)
    pictures = {}
    for recorded in frames:
        packet = av.Packet(recorded.frame.data)
        packet.pts = recorded.frame.pts_us
        for picture in decoder.decode(packet):
            pictures[picture.pts] = picture
    for picture in decoder.decode(None):
        pictures[picture.pts] = picture
    number = frame_id(pictures[target.frame.pts_us].to_ndarray(format="gray"))
    assert number is not None
    return number, target.wall


@pytest.mark.alone
async def test_a_seek_shows_the_frame_recorded_then_and_playback_has_no_underruns(tmp_path):
    clip = tmp_path / "clip.mkv"
    avd.generate(clip, fps="25", duration=40, width=320, height=240, sample_rate=8000, audio_codec="pcm",
                 audio_offset=0.040, music=False)
    async with camera_and_service(tmp_path, "--clip", str(clip), yaml="segment_seconds: 2") \
            as (_, _, base, creds), browser_page() as (page, errors):
        began = time.time()
        await sign_in(page, base, creds)
        await page.goto(f"{base}/static/bench/live.html?camera=cam1")
        await page.wait_for_function(f"{PLAYER}?.stats?.framesShown > 10", timeout=30000)
        await asyncio.sleep(max(0.0, 10 - (time.time() - began)))  # about 10 s recorded, in 2 s segments
        database = Database.open(tmp_path)
        recordings = Recordings(database)
        segments = recordings.segments("cam1")
        assert len(segments) >= 3, segments
        boundary = segments[1].start_wall + 0.013  # just past a segment's start: its first keyframe
        inside = segments[1].start_wall + 1.37  # between keyframes (1 s apart): decoded from the one before
        expected = [recorded_frame_at(tmp_path / "recordings", recordings, at) for at in (boundary, inside)]

        await page.evaluate(f"""() => {{ for (const e of {PLAYER}.shadowRoot.children)  // text off the picture
            if (e.tagName !== 'CANVAS' && e.tagName !== 'STYLE') e.style.visibility = 'hidden'; }}""")
        shown = []
        for (_, recorded_wall), command in zip(expected, (
                f"{PLAYER}.playRecording({boundary}, {{ paused: true }})",
                f"{PLAYER}.control({{ action: 'seek', wall: {inside} }})"), strict=True):
            await page.evaluate(command)
            await page.wait_for_function(f"Math.abs(({PLAYER}.stats?.wall ?? 0) - {recorded_wall}) < 0.001",
                                         timeout=15000)
            await asyncio.sleep(0.3)  # drawn, and on the screen
            shown.append(frame_id(pixels(await page.locator("#player canvas").screenshot())))
        paused = await page.evaluate(f"{PLAYER}.playback")

        await page.evaluate(f"{PLAYER}.control({{ action: 'play' }})")
        await asyncio.sleep(1.5)  # the sound starts (the player's first second) and the clock with it
        start = await page.evaluate(f"{PLAYER}.stats")
        await asyncio.sleep(PLAY_S)
        played = await page.evaluate(f"{PLAYER}.stats")
        state = await page.evaluate(f"{PLAYER}.playback")

        # the page's timeline: the recorded range drawn, and a click there plays from the time clicked
        await page.goto(base)
        bar = "document.querySelector('opticlink-player')?.timeline"
        await page.wait_for_function(f"{bar}?.data.segments.length > 0", timeout=15000)
        await page.select_option(".ol-timeline .span", "600")
        await page.wait_for_function(f"{bar}.view.end - {bar}.view.start === 600")
        view = await page.evaluate(f"{bar}.view")
        box = await page.locator(".ol-timeline canvas").bounding_box()
        await page.mouse.click(box["x"] + box["width"] * (inside - view["start"]) / 600, box["y"] + box["height"] / 2)
        await page.wait_for_function("document.querySelector('opticlink-player').stats?.wall > 0", timeout=15000)
        clicked = await page.evaluate("document.querySelector('opticlink-player').playback")
        audit = [(row.action, row.user) for row in database.audit(50) if row.action.startswith("playback")]
        database.close()
    assert errors == []
    for number, (wanted, _) in zip(shown, expected, strict=True):
        assert number is not None and abs(number - wanted) <= 1, (shown, expected)
    assert paused["state"] == "paused"
    assert state["state"] == "playing" and state["speed"] == 1
    assert played["underruns"] == 0, played
    assert played["clock"] == "audio" and played["audioCodec"] == "pcmu"
    assert played["framesShown"] - start["framesShown"] > 0.8 * 25 * PLAY_S, (start, played)  # 25 fps
    assert PLAY_S - 1.5 < played["wall"] - start["wall"] < PLAY_S + 1.5, (start["wall"], played["wall"])
    assert ("playback_start", creds.name) in audit
    assert clicked["state"] == "playing" and abs(clicked["wall"] - inside) < 3, (clicked, inside)
