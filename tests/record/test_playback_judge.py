"""The screen judge for playback (tests/live/judge.py): a recording of av-drift-detector's clip, played
back through the player, keeps picture and sound together on the screen as Chromium's own `<video>`
does on the same clip."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from playwright.async_api import async_playwright

from opticlink.live.chromium import launch
from tests.auth.helpers import sign_in
from tests.live.judge import clips, judge, record
from tests.live.test_player import SCREENSHOTS, camera_and_service

RECORDED_FIRST_S = 8.0  # recorded before the playback starts (it plays from 2 s in, the recording goes on)


@pytest.mark.slow
@pytest.mark.judge
async def test_playback_on_the_screen_keeps_picture_and_sound_together_as_chromiums_own_player_does(tmp_path):
    # The simulated camera serves the clip with a 300 ppm audio clock and 40 ms of jitter; the service
    # records it (5 s segments: the playback crosses several) and the page plays the recording back
    # while the judge's tab capture runs, then Chromium's <video> plays the clip itself. As for live
    # (tests/live/test_player.py), the capture wanders on a loaded machine: up to three recordings.
    camera_clip, native_clip = clips(tmp_path, 60)
    faults = "audio_skew_ppm=300,jitter_ms=40"
    attempts = []
    async with (camera_and_service(tmp_path, "--clip", str(camera_clip), "--faults", faults,
                                   yaml="segment_seconds: 5") as (_, _, base, creds),
                async_playwright() as pw):
        began = time.time()
        await asyncio.sleep(RECORDED_FIRST_S)
        for attempt in range(3):
            browser = await launch(pw, tab_capture=True)
            page = await browser.new_page(viewport={"width": 640, "height": 360})
            await sign_in(page, base, creds)
            capture = tmp_path / f"judge{attempt}.webm"
            parts = await record(page, base, "cam1", native_clip, [("ours", 22), ("native", 12)], capture,
                                 playback=began + 2.0)
            await browser.close()
            judged = judge(capture, parts)
            ours, native = judged["ours"], judged["native"]
            stats = parts[0].stats
            attempts.append((ours and ours.as_dict(), native and native.as_dict(),
                             {k: stats.get(k) for k in ("underruns", "clock", "framesShown", "wall")}))
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (SCREENSHOTS / "playback-judge.json").write_text(json.dumps(attempts, indent=1))  # the figures
            if ours is None or native is None:
                continue
            steady = abs(ours.drift_ms) <= 10 and ours.spread_ms <= max(12.0, native.spread_ms + 6.0)
            if ours.frames > 250 and stats["underruns"] == 0 and stats["clock"] == "audio" \
                    and abs(ours.mean_ms - native.mean_ms) <= 25 and steady:
                return
    pytest.fail(f"no recording judged the playback in sync and steady: {attempts}")
