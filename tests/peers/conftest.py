"""Independent peers run as subprocesses: GStreamer's RTSP server (system Python) and FFmpeg."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
HERE = Path(__file__).parent


@contextlib.contextmanager
def gstreamer_server(tmp_path: Path, video: str = "h264", audio: str = "pcmu", *, clip: Path | None = None,
                     bframes: int = 0, parameter_sets: str = "inband",
                     audio_ms: int = 0, audio_report_delay: float = 0.0) -> Iterator[tuple[str, Path]]:
    """Start the GStreamer ONVIF server; yields its URL and the backchannel output file.
    `audio_report_delay`: the video's first Sender Report first, the audio's this many seconds later."""
    back = tmp_path / "backchannel.ulaw"
    extra = ["--clip", str(clip)] if clip is not None else []
    extra += ["--bframes", str(bframes), "--parameter-sets", parameter_sets, "--audio-ms", str(audio_ms)]
    if audio_report_delay:
        extra += ["--audio-report-delay", str(audio_report_delay)]
    proc = subprocess.Popen([SYSTEM_PYTHON, str(HERE / "gst_onvif_server.py"), "--video", video, "--audio", audio,
                             "--backchannel-file", str(back), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("PORT ") or proc.poll() is not None:
                break
        if not line.startswith("PORT "):
            raise RuntimeError(f"GStreamer RTSP server did not start: {proc.stderr.read()[-2000:]}")
        yield f"rtsp://127.0.0.1:{int(line.split()[1])}/test", back
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def gst(tmp_path):
    return lambda **kw: gstreamer_server(tmp_path, **kw)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/peers" in str(item.fspath):
            item.add_marker(pytest.mark.peer)


__all__ = ["gstreamer_server", "sys"]
