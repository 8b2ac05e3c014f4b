"""Intercom: echo cancellation, double talk, feedback in a closed loop, and talk latency. JSON out.

1. ERLE (echo return loss enhancement) of our echo canceller (WebRTC AEC3 with far and near laid
   on one clock) on the simulated camera's echo path (room impulse response, 150 ms and more),
   at delays of 50, 150 and 400 ms, for voice-like talk: AEC off (0 dB by definition) and on,
   from two seconds after talk starts.
2. Double talk: someone speaks at the camera while the operator talks; the near-end speech
   level after the canceller against before.
3. Closed loop, loop gain +6 dB: operator's speaker -> operator's microphone (no browser echo
   cancellation: it may not see Web Audio) -> camera's speaker -> camera's microphone -> back to
   the operator. Without echo control it howls (peak level reported); with it (canceller on the
   return path, howling guard on both paths), 60 s without a howl.
4. The service's return path end to end: a simulated doorbell, the service, a talker; the echo
   a viewer hears against the camera's microphone heard directly.
5. Talk latency over real sockets (simulator, service, a WebSocket talker sending 20 ms frames):
   capture (the frame's own length), network, transcode, packetization, total, p50 and p95;
   then from headless Chromium's (fake) microphone through the talk button, capture worklet and
   Worker (capture then includes the browser's input latency and the resampler's delay).

    .venv/bin/python bench/talk.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np

from access import admin, data_dir_env
from opticlink.dsp.echo import EchoCanceller
from opticlink.dsp.g711 import from_float, to_float
from opticlink.dsp.howling import HowlingGuard
from opticlink.sim.echo import EchoPath
from opticlink.sim.voice import synthetic_speech

RATE = 8000
BLOCK = 160  # 20 ms frames, as talk and G.711 cameras send


def db(power_ratio: float) -> float:
    return round(float(10 * np.log10(max(float(power_ratio), 1e-20))), 1)


def erle_case(delay_ms: float, seconds: float = 12.0, double_talk: bool = False) -> dict[str, float]:
    """Talk starts at 0 s; the canceller runs on the camera's microphone."""
    far = synthetic_speech(seconds, RATE, seed=1)
    near_talker = synthetic_speech(seconds, RATE, pitch_hz=210, level_db=-20, seed=5)
    path = EchoPath(RATE, delay_ms=delay_ms, gain_db=0.0)
    canceller = EchoCanceller(RATE, epoch=0.0)
    echo_in, out, near_in = [], [], []
    for start in range(0, len(far) - BLOCK + 1, BLOCK):
        t = start / RATE
        block = far[start : start + BLOCK]
        canceller.far(block, RATE, t)  # sent at t
        path.play(block, t)  # the camera plays it on arrival
        echo = path.render(t, BLOCK)
        talker = near_talker[start : start + BLOCK] if double_talk and 6.0 <= t < 10.0 else np.zeros(BLOCK, np.float32)
        mic = echo + talker + np.float32(1e-4) * np.random.default_rng(start).standard_normal(BLOCK).astype(np.float32)
        echo_in.append(echo)
        near_in.append(talker)
        out.append(canceller.near(mic, round(t * 1e6)))
    echo_in, out, near_in = np.concatenate(echo_in), np.concatenate(out), np.concatenate(near_in)
    if double_talk:
        window = slice(int(6.5 * RATE), int(10 * RATE))
        return {"near_speech_level_change_db": db(np.mean(out[window] ** 2) / np.mean(near_in[window] ** 2))}
    first = slice(2 * RATE, 4 * RATE)
    rest = slice(2 * RATE, len(out))
    return {"erle_db_2_to_4s": db(np.mean(echo_in[first] ** 2) / np.mean(out[first] ** 2)),
            "erle_db_2s_to_end": db(np.mean(echo_in[rest] ** 2) / np.mean(out[rest] ** 2))}


def closed_loop(controlled: bool, seconds: float = 60.0, loop_gain_db: float = 6.0) -> dict[str, object]:
    """Both rooms and the network, 20 ms at a time; G.711 both ways, 10 ms network each way."""
    operator_voice = synthetic_speech(3.0, RATE, seed=9)
    camera_path = EchoPath(RATE, delay_ms=150, gain_db=loop_gain_db)
    operator_path = EchoPath(RATE, delay_ms=30, gain_db=0.0, t60=0.15, seed=2)
    canceller = EchoCanceller(RATE, epoch=0.0) if controlled else None
    talk_guard = HowlingGuard(RATE) if controlled else None
    return_guard = HowlingGuard(RATE) if controlled else None
    network = int(0.010 * RATE / BLOCK) or 1
    to_camera: list[np.ndarray] = [np.zeros(BLOCK, np.float32)] * network
    to_operator: list[np.ndarray] = [np.zeros(BLOCK, np.float32)] * network
    peak, first_loud = 0.0, None
    levels = []
    for index in range(int(seconds * RATE / BLOCK)):
        t = index * BLOCK / RATE
        voice = operator_voice[index * BLOCK : (index + 1) * BLOCK] if index * BLOCK < len(operator_voice) else 0
        mic = operator_path.render(t, BLOCK) + voice
        talk = np.clip(mic, -1, 1).astype(np.float32)
        if talk_guard is not None:
            talk = talk_guard.process(talk)
        talk = to_float(from_float(talk, "pcmu"), "pcmu")  # what the camera's backchannel carries
        if canceller is not None:
            canceller.far(talk, RATE, t)
        to_camera.append(talk)
        camera_path.play(to_camera.pop(0), t)
        camera_mic = np.clip(camera_path.render(t, BLOCK), -1, 1)
        back = to_float(from_float(camera_mic, "pcmu"), "pcmu")
        if canceller is not None:
            back = canceller.near(back, round(t * 1e6))
        if return_guard is not None:
            back = return_guard.process(back)
        to_operator.append(back.astype(np.float32))
        operator_path.play(to_operator.pop(0), t)
        level = float(np.max(np.abs(camera_mic)))
        levels.append(level)
        if t > 3.5:  # after the operator stopped talking, only the loop can make sound
            peak = max(peak, level)
            if first_loud is None and level > 0.5:
                first_loud = t
    tail = np.array(levels[int(10 * RATE / BLOCK) :])
    out: dict[str, object] = {
        "peak_dbfs_after_talk": round(20 * np.log10(max(peak, 1e-9)), 1),
        "seconds_to_half_scale": None if first_loud is None else round(first_loud - 3.0, 2),
        "howled": bool(peak > 0.5),
        "median_level_dbfs_last_50s": round(20 * np.log10(max(float(np.median(tail)), 1e-9)), 1),
    }
    if controlled:
        out["howling_guard_detections"] = talk_guard.detections + return_guard.detections  # type: ignore[union-attr]
    return out


async def talk_latency(seconds: float = 20.0) -> dict[str, object]:
    import websockets

    from opticlink.api.config import CameraConfig, ServiceConfig
    from opticlink.api.server import running
    from opticlink.live.protocol import encode_talk
    from opticlink.sim.presets import camera
    from opticlink.sim.server import SimulatorServer

    async with SimulatorServer([camera("cam1", width=320, height=180, bitrate=300_000)], port=0) as sim:
        config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=sim.url("cam1"))], port=0)
        async with running(config) as (service, base):
            signed = admin(service)
            await asyncio.sleep(2)
            url = base.replace("http", "ws") + "/api/cameras/cam1/live"
            async with websockets.connect(url, max_size=None, max_queue=None, additional_headers=signed.bearer) as ws:
                drain = asyncio.create_task(_discard(ws))
                await ws.send(json.dumps({"type": "talk", "action": "start"}))
                await asyncio.sleep(0.5)
                voice = (synthetic_speech(seconds, RATE) * 32767).astype(np.int16)
                loop = asyncio.get_running_loop()
                started = loop.time()
                for i, offset in enumerate(range(0, len(voice) - BLOCK + 1, BLOCK)):
                    await asyncio.sleep(max(0.0, started + (i + 1) * 0.02 - loop.time()))
                    now = time.time()
                    # as a browser sends it: the frame's first sample was captured 20 ms ago
                    await ws.send(encode_talk(i, RATE, voice[offset : offset + BLOCK].tobytes(),
                                              captured_us=(now - BLOCK / RATE) * 1e6, sent_us=now * 1e6))
                await asyncio.sleep(0.5)
                drain.cancel()
            stats = service.cameras["cam1"].talk.latency_stats()  # type: ignore[union-attr]
    return {"packet_ms": 20, **stats}


async def browser_talk_latency(seconds: float = 20.0) -> dict[str, object]:
    """A real browser talking: Chromium's fake microphone (a WAV file) through getUserMedia, the
    capture worklet, the Worker's WebSocket, to the service (`opticlink serve`) and the camera
    (`opticlink sim`), each its own process, one camera so nothing else loads the machine."""
    import os
    import re
    import tempfile
    import wave
    from pathlib import Path

    import httpx
    from playwright.async_api import async_playwright

    from opticlink.live.chromium import launch

    directory = Path(tempfile.mkdtemp())
    microphone = directory / "microphone.wav"
    voice = (synthetic_speech(10.0, 48000, level_db=-18) * 32767).astype("<i2")
    with wave.open(str(microphone), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(voice.tobytes())
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")

    async def started(*args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
        proc = await asyncio.create_subprocess_exec(opticlink, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL, env=env)
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()  # type: ignore[union-attr]
        return proc, re.search(r"(https?|rtsp)://\S+", line).group(0)  # type: ignore[union-attr]

    sim, url = await started("sim", "--port", "0", "--size", "320x180")
    config = directory / "cameras.yaml"
    config.write_text(f"cameras:\n  - id: cam\n    url: {url}\n")
    data, env = data_dir_env()
    service, base = await started("serve", str(config), "--port", "0", env=env)
    signed = admin(data)
    try:
        async with async_playwright() as pw:
            browser = await launch(pw, extra_args=[f"--use-file-for-fake-audio-capture={microphone}"])
            page = await browser.new_page()
            await page.context.add_cookies([signed.browser_cookie(base)])
            await page.goto(f"{base}/static/bench/live.html?camera=cam")
            await page.wait_for_function("document.getElementById('player')?.stats?.audioFrames > 50", timeout=60000)
            await page.locator("#player button.talk-button").click()  # latched
            await asyncio.sleep(seconds)
            stats = await page.evaluate("document.getElementById('player').stats")
            await page.locator("#player button.talk-button").click()
            async with httpx.AsyncClient(headers=signed.bearer) as client:
                status = (await client.get(f"{base}/api/cameras/cam")).json()
            await browser.close()
    finally:
        for proc in (service, sim):
            proc.terminate()
            await proc.wait()
    talk = status["talk"]
    return {"packet_ms": 20, "frames_sent": stats.get("talkFramesSent"), **talk["latency"],
            "browser_capture_ms": {"p50_ms": stats.get("talkCaptureP50Ms"), "p95_ms": stats.get("talkCaptureP95Ms")}}


async def service_doorbell(seconds: float = 8.0) -> dict[str, object]:
    """The whole return path in one process: simulated doorbell (echo 150 ms, -3 dB), service,
    a WebSocket talker in real time; the camera's microphone heard directly against what a viewer
    of the service hears, band 1.5-3.5 kHz (where the camera's own sound is quiet), after 2 s."""
    import websockets

    from opticlink.api.config import CameraConfig, ServiceConfig
    from opticlink.api.server import running
    from opticlink.camera.session import CameraSession
    from opticlink.dsp.g711 import decode_g711
    from opticlink.live.protocol import encode_talk
    from opticlink.rtsp.client import ClientConfig
    from opticlink.sim.presets import camera
    from opticlink.sim.server import SimulatorServer
    from opticlink.sim.spec import EchoSettings

    def band_power(pcm: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
        freqs = np.fft.rfftfreq(len(pcm), 1 / RATE)
        return float(spectrum[(freqs >= 1500) & (freqs <= 3500)].sum()) / len(pcm)

    def heard(frames: list[tuple[float, bytes]], start: float, end: float) -> np.ndarray:
        return decode_g711(b"".join(d for t, d in frames if start <= t < end), "pcmu").astype(float) / 32768

    loop = asyncio.get_running_loop()
    spec = camera("cam1", width=320, height=180, bitrate=300_000, echo=EchoSettings(delay_ms=150, gain_db=-3))
    async with SimulatorServer([spec], port=0) as sim:
        config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=sim.url("cam1"))], port=0)
        async with running(config) as (service, base):
            raw: list[tuple[float, bytes]] = []

            def microphone(track: int, unit) -> None:  # type: ignore[no-untyped-def]
                if track == 1:
                    raw.append((loop.time(), unit.data))

            direct = CameraSession(ClientConfig(sim.url("cam1")), reconnect=False, on_unit=microphone)
            direct_task = asyncio.create_task(direct.run())
            cleaned: list[tuple[float, bytes]] = []
            url = base.replace("http", "ws") + "/api/cameras/cam1/live"
            signed = admin(service)
            options = {"max_queue": None, "max_size": None, "additional_headers": signed.bearer}
            async with websockets.connect(url, **options) as talker, websockets.connect(url, **options) as viewer:
                async def listen() -> None:
                    async for message in viewer:
                        if isinstance(message, bytes) and message[0] == 2 and message[1] == 1:
                            cleaned.append((loop.time(), message[24:]))

                listener = asyncio.create_task(listen())
                drain = asyncio.create_task(_discard(talker))
                await talker.send(json.dumps({"type": "talk", "action": "start"}))
                await asyncio.sleep(0.5)
                voice = (synthetic_speech(seconds, RATE, level_db=-12) * 32767).astype(np.int16)
                begin = loop.time()
                for i in range(0, len(voice) - BLOCK + 1, BLOCK):
                    await talker.send(encode_talk(i // BLOCK, RATE, voice[i : i + BLOCK].tobytes()))
                    await asyncio.sleep(max(0.0, begin + (i + BLOCK) / RATE - loop.time()))
                end = loop.time()
                listener.cancel()
                drain.cancel()
            status = service.cameras["cam1"].status()
            await direct.stop()
            direct_task.cancel()
    before, after = band_power(heard(raw, begin + 2, end)), band_power(heard(cleaned, begin + 2, end))
    return {"echo_delay_ms": 150, "echo_gain_db": -3, "seconds": seconds,
            "echo_reduction_db": db(before / after), "echo_control": status["talk"]["echo_control"]}


async def _discard(ws) -> None:  # type: ignore[no-untyped-def]
    async for _ in ws:
        pass


def main() -> None:
    report: dict[str, object] = {"benchmark": "talk",
                                 "targets": {"erle_db": 35, "double_talk_level_db": 6, "latency_p95_ms": 60}}
    print("echo return loss enhancement at 50, 150, 400 ms", file=sys.stderr, flush=True)
    report["erle"] = {f"{d}ms": {"aec_off_db": 0.0, "aec_on": erle_case(d)} for d in (50, 150, 400)}
    print("double talk", file=sys.stderr, flush=True)
    report["double_talk"] = {f"{d}ms": erle_case(d, double_talk=True) for d in (50, 150, 400)}
    print("closed loop, +6 dB, 60 s, without and with echo control", file=sys.stderr, flush=True)
    report["closed_loop"] = {"without_control": closed_loop(False), "with_control": closed_loop(True)}
    print("the service's return path against a simulated doorbell", file=sys.stderr, flush=True)
    report["service_doorbell"] = asyncio.run(service_doorbell())
    print("talk latency over real sockets", file=sys.stderr, flush=True)
    report["latency"] = asyncio.run(talk_latency())
    print("talk latency from headless Chromium's microphone", file=sys.stderr, flush=True)
    report["browser_latency"] = asyncio.run(browser_talk_latency())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
