"""Make the committed corpora again: `.venv/bin/python tests/corpus/make_corpora.py [NAME...]`.

Each is a real probe (`opticlink probe --save`, or the same `probe(recorder=...)` where the CLI
has no option for the case) of the built-in simulator, or of Debian's GStreamer RTSP server
(tests/peers), kept small: a low bit rate picture, a few seconds.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SMALL = ["--size", "320x180", "--bitrate", "150000"]

# name: (seconds, extra `opticlink probe` options)
CLI_CASES: dict[str, tuple[float, list[str]]] = {
    "sim_h264_bframes_sdp_only": (3, ["--bframes", "2", "--parameter-sets", "sdp"]),
    "sim_h265_bframes": (3, ["--codec", "h265", "--bframes", "2"]),
    "sim_audio_report_late": (5, ["--faults", "video_sr_delay_s=0.5,audio_sr_delay_s=2"]),
}
GST_CASES = {  # gstreamer_server options
    "gst_h264_bframes_audio_40ms": dict(video="h264", bframes=2, parameter_sets="sdp", audio_ms=40),
    "gst_h265_bframes": dict(video="h265", bframes=2),
}


def cli_case(name: str, seconds: float, options: list[str]) -> None:
    from opticlink.cli import main

    path = HERE / f"{name}.olc"
    code = main(["probe", "--seconds", str(seconds), "--save", str(path), *SMALL, *options])
    if code != 0:
        raise SystemExit(f"{name}: probe failed ({code})")


async def _probe_to(url: str, path: Path, seconds: float) -> None:
    from opticlink.camera.corpus import TrafficRecorder
    from opticlink.camera.probe import probe
    from opticlink.rtsp.client import ClientConfig

    config = ClientConfig(url)
    recorder = TrafficRecorder.for_config(config)
    report = await probe(config, seconds, recorder=recorder)
    if report.error:
        raise SystemExit(f"{path.name}: {report.error}")
    recorder.save(path)


async def sim_audio_40ms(seconds: float = 3) -> None:
    """40 ms audio packets, from a camera with a password given in the URL (the corpus must not hold it)."""
    from opticlink.sim.presets import camera
    from opticlink.sim.server import SimulatorServer

    spec = camera("cam1", width=320, height=180, bitrate=150_000, audio_packet_ms=40, username="admin",
                  password="s3cret-Pa55")
    server = SimulatorServer([spec], port=0)
    await server.start()
    try:
        await _probe_to(server.url("cam1", credentials=True), HERE / "sim_audio_40ms_auth.olc", seconds)
    finally:
        await server.close()


def gst_case(name: str, options: dict, seconds: float = 5) -> None:
    """GStreamer's first Sender Reports come a second or two in: five seconds leave some after."""
    sys.path.insert(0, str(ROOT))
    from tests.peers.conftest import gstreamer_server

    with tempfile.TemporaryDirectory() as tmp, gstreamer_server(Path(tmp), **options) as (url, _):
        asyncio.run(_probe_to(url, HERE / f"{name}.olc", seconds))


def main(names: list[str]) -> None:
    for name, (seconds, options) in CLI_CASES.items():
        if not names or name in names:
            cli_case(name, seconds, options)
    if not names or "sim_audio_40ms_auth" in names:
        asyncio.run(sim_audio_40ms())
    for name, options in GST_CASES.items():
        if not names or name in names:
            gst_case(name, options)
    for path in sorted(HERE.glob("*.olc")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
