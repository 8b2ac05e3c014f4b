"""Headless Chromium for the live player's tests and benchmarks (Debian's /usr/bin/chromium).

The flags are the brief's (autoplay without a gesture, fake camera and microphone, no background
networking) plus a software GPU. Without any GPU (`--disable-gpu`) Chromium paints and reads back
a Worker's VideoFrames through the page's main thread, so a busy page would stall the player's
Worker; SwiftShader gives the Worker a graphics context of its own, as a real GPU would. Compositing
stays in software (`--disable-gpu-compositing`): SwiftShader composing the page held a 4-camera page
at 3-8 animation frames a second on 2 cores (a GPU process at 65 % of a core), and three such pages
at one every 2-5 s, so clicks waited for a stable frame for 30 s; composited in software the page
runs at 60 frames a second, and three at 3-15.

`tab_capture=True` is for judging what a page shows and plays (`tests/live/judge.py`): the page
may capture its own tab with its sound (`getDisplayMedia`, accepted without a prompt), and the
sound is not muted. The fake capture UI is left out there, since it would hand the page a fake
screen and a beep instead of the tab.
"""

from __future__ import annotations

import os

EXECUTABLE = os.environ.get("OPTICLINK_CHROMIUM", "/usr/bin/chromium")
FAKE_CAPTURE_UI = "--use-fake-ui-for-media-stream"
ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    FAKE_CAPTURE_UI,
    "--disable-background-networking",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-gpu-compositing",
    "--no-sandbox",  # we run as root in CI
    "--no-first-run",
    "--disable-component-update",
]
TAB_CAPTURE_ARGS = [a for a in ARGS if a != FAKE_CAPTURE_UI] + ["--auto-accept-this-tab-capture"]


async def launch(playwright, *, extra_args: list[str] | None = None, tab_capture: bool = False):  # type: ignore[no-untyped-def]
    """A headless Chromium browser from a Playwright instance."""
    args = TAB_CAPTURE_ARGS if tab_capture else ARGS
    return await playwright.chromium.launch(executable_path=EXECUTABLE, args=[*args, *(extra_args or [])],
                                            headless=True,
                                            # Playwright mutes by default; a tab capture would record silence
                                            ignore_default_args=["--mute-audio"] if tab_capture else None)
