"""Headless Chromium for the live player's tests and benchmarks (Debian's /usr/bin/chromium).

The flags are the brief's (autoplay without a gesture, fake camera and microphone, no background
networking) plus a software GPU. Without any GPU (`--disable-gpu`) Chromium paints and reads back
a Worker's VideoFrames through the page's main thread, so a busy page would stall the player's
Worker; SwiftShader gives the Worker a graphics context of its own, as a real GPU would.
"""

from __future__ import annotations

import os

EXECUTABLE = os.environ.get("OPTICLINK_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-sandbox",  # we run as root in CI
    "--no-first-run",
    "--disable-component-update",
]


async def launch(playwright, *, extra_args: list[str] | None = None):  # type: ignore[no-untyped-def]
    """A headless Chromium browser from a Playwright instance."""
    return await playwright.chromium.launch(executable_path=EXECUTABLE, args=[*ARGS, *(extra_args or [])],
                                            headless=True)
