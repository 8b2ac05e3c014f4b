"""An independent judge of lip sync on the screen: a tab capture read by av-drift-detector.

The player's own A/V figure compares its clock with its own choice of frame. This judge looks at
what the page actually puts out instead: the page (`tests/web/judge.html`) records its own tab,
picture and sound together, first while our player plays a simulated camera that serves
av-drift-detector's test clip, then while Chromium's own `<video>` plays the same clip from a
file. av-drift-detector reads the frame number in every captured picture and in the sound beside
it. The capture adds a delay of its own to the sound (tens of ms, the same for both parts of one
recording), so what counts is ours against Chromium's `<video>` in the same recording, and how
steady ours stays over time. Needs Chromium launched with `tab_capture=True`, the dev extra
`av-drift-detector` (with FFmpeg), and a service serving `tests/web` at /static/bench
(`OPTICLINK_BENCH_DIR`, see `opticlink.api.app`). Test tooling, not in the package: used by
tests/live/test_player.py (`make judge`) and bench/live.py.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SETTLE_S = 6.0  # the player's start (warm-up, first reports) is not judged
EDGE_S = 1.0  # nor the second around each switch and the end of the recording
MISREAD_MS = 500.0  # a frame this far from the part's median paired a picture with the wrong sound


@dataclass(slots=True)
class Judged:
    """One part of a recording: sound minus picture (ms, positive: the sound is late) per frame."""

    frames: int
    misread: int  # frames left out: picture and sound stamps that cannot belong together
    mean_ms: float
    stddev_ms: float
    spread_ms: float  # 1.4826 x the median absolute deviation: the stddev without the odd stray frame
    p99_abs_dev_ms: float  # p99 of |offset - mean|: how far single frames stray
    drift_ms: float  # last 5 s mean minus first 5 s mean: whether sync holds over time
    block_means_ms: list[float]  # 5 s block means

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class Part:
    """One part of a recording: which player, for how long, from when (s into the recording)."""

    player: str
    seconds: float
    start: float
    stats: dict[str, object]


def clips(work: Path, seconds: float) -> tuple[Path, Path]:
    """av-drift-detector's test clip twice: 8 kHz PCM in Matroska for the simulated camera (it
    sends G.711), and H.264 with AAC in MP4 for Chromium's `<video>`. No built-in audio offset."""
    import av_drift_detector as avd

    camera, native = work / "judge-camera.mkv", work / "judge-native.mp4"
    avd.generate(str(camera), fps="25", duration=seconds, width=640, height=360, sample_rate=8000,
                 audio_codec="pcm", music=False)
    avd.generate(str(native), fps="25", duration=seconds, width=640, height=360, sample_rate=48000, music=False)
    return camera, native


async def record(page, base: str, camera: str, native_clip: Path, parts: list[tuple[str, float]],  # type: ignore[no-untyped-def]
                 out: Path, *, playback: float | None = None) -> list[Part]:
    """Open the judge page for `camera` and record each (player, seconds) part in turn: "ours",
    "baseline" or "native" (`<video>` playing `native_clip`). Writes the WebM to `out`. `playback`
    (Unix s): "ours" plays the camera's recording from then instead of its live picture."""
    body = native_clip.read_bytes()

    async def serve_clip(route) -> None:  # type: ignore[no-untyped-def]
        await route.fulfill(status=200, body=body, headers={"Content-Type": "video/mp4",
                                                           "Cross-Origin-Resource-Policy": "same-origin"})

    clip_url = f"{base}/static/bench/judge-clip.mp4"  # not a file there: the route serves it
    await page.route(clip_url, serve_clip)
    recorded = f"&playback={playback}" if playback is not None else ""
    await page.goto(f"{base}/static/bench/judge.html?camera={camera}&clip={clip_url}{recorded}")
    await page.wait_for_function("window.judgeReady === true")
    result = await page.evaluate("(parts) => window.judge(parts)",
                                 [{"player": player, "seconds": seconds} for player, seconds in parts])
    out.write_bytes(base64.b64decode(result["webm"]))
    return [Part(player, seconds, float(start), stats or {})
            for (player, seconds), start, stats in zip(parts, result["starts"], result["stats"], strict=True)]


def judge(path: Path, parts: list[Part]) -> dict[str, Judged | None]:
    """Score a judge recording, part by part (a player's start is left out)."""
    import av_drift_detector as avd

    report = avd.analyze(str(path), capture="file")
    ok = [f for f in report["frames"] if f["status"] == "ok" and f["drift_ms"] is not None]
    t = np.array([f["time"] for f in ok], dtype=float)
    d = np.array([f["drift_ms"] for f in ok], dtype=float)
    out = {}
    for part in parts:
        settle = EDGE_S if part.player == "native" else SETTLE_S
        out[part.player] = _part(t, d, part.start + settle, part.start + part.seconds - EDGE_S)
    return out


def _part(t: np.ndarray, d: np.ndarray, start: float, stop: float) -> Judged | None:
    keep = (t >= start) & (t <= stop)
    if keep.sum() < 50:
        return None
    t, d = t[keep], d[keep]
    plausible = np.abs(d - np.median(d)) < MISREAD_MS
    misread = int((~plausible).sum())
    t, d = t[plausible], d[plausible]
    mean = float(d.mean())
    blocks = [float(d[(t >= b) & (t < b + 5)].mean()) for b in np.arange(t[0], t[-1] - 2.5, 5.0)
              if ((t >= b) & (t < b + 5)).sum() >= 10]
    spread = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    return Judged(frames=len(d), misread=misread, mean_ms=round(mean, 2), stddev_ms=round(float(d.std()), 2),
                  spread_ms=round(spread, 2),
                  p99_abs_dev_ms=round(float(np.percentile(np.abs(d - mean), 99)), 2),
                  drift_ms=round(blocks[-1] - blocks[0], 2) if len(blocks) >= 2 else 0.0,
                  block_means_ms=[round(b, 2) for b in blocks])
