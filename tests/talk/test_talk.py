"""Talking to cameras: the encoder, a session against GStreamer's ONVIF backchannel, and the
talk protocol over the live WebSocket against our simulator."""

import asyncio
import json
import logging

import av
import numpy as np
import pytest
import websockets

from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.server import running
from opticlink.dsp.g711 import decode_g711
from opticlink.live.protocol import encode_talk
from opticlink.rtp.formats import RtpFormat, create_depacketizer
from opticlink.rtp.formats.aac import aac_fmtp, audio_specific_config
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import RtpPacket
from opticlink.rtsp.client import ClientConfig
from opticlink.sim.server import SimulatorServer
from opticlink.talk.encoder import TalkEncoder
from opticlink.talk.session import TalkBusy, TalkSession
from tests.auth.helpers import credentials
from tests.conftest import small_camera
from tests.peers.conftest import gstreamer_server


def tone(hz: float, seconds: float, rate: int, level: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * level * 32767).astype(np.int16)


def snr_db(pcm: np.ndarray, hz: float, rate: int) -> float:
    x = pcm.astype(float)
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fit = basis @ coef
    return 10 * np.log10(np.sum(fit**2) / np.sum((x - fit) ** 2))


@pytest.mark.parametrize(("fmt", "packet_ms"), [
    (RtpFormat(0, "PCMU", 8000), 20), (RtpFormat(8, "PCMA", 8000), 160), (RtpFormat(97, "L16", 16000), 40),
    (RtpFormat(97, "MPEG4-GENERIC", 16000, 1, aac_fmtp(audio_specific_config(16000, 1))), 20)])
def test_talk_is_encoded_to_what_the_backchannel_accepts_in_packets_of_the_cameras_size(fmt, packet_ms):
    encoder = TalkEncoder(fmt, packet_ms)
    packets = []
    source = tone(700, 1.0, 16000)
    for i in range(0, len(source), 320):
        packets += encoder.encode(source[i : i + 320], 16000)[0]
    packets += encoder.flush()
    depacketizer = create_depacketizer(fmt)
    units = [u for i, p in enumerate(packets) for u in depacketizer.push(BufferedPacket(RtpPacket.parse(p), i, 0.0))]
    if fmt.encoding in ("PCMU", "PCMA"):
        assert {u.duration for u in units[1:-1]} == {8 * packet_ms}
        pcm = decode_g711(b"".join(u.data for u in units), fmt.encoding.lower())
    elif fmt.encoding == "L16":
        assert {u.duration for u in units[1:-1]} == {16 * packet_ms}
        pcm = np.frombuffer(b"".join(u.data for u in units), ">i2")
    else:
        ctx = av.CodecContext.create("aac", "r")
        ctx.extradata = units[0].config.extra
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for u in units for f in ctx.decode(av.Packet(u.data))])
        pcm = (pcm * 32767).astype(np.int16)
    rate = fmt.clock_rate
    floor = 15 if fmt.encoding == "MPEG4-GENERIC" else 25  # AAC at 32 kbit/s is perceptual, not waveform, coding
    assert snr_db(pcm[rate // 10 : -rate // 10], 700, rate) > floor


async def _talk_to_gstreamer(directory) -> tuple[np.ndarray, int]:
    directory.mkdir()
    with gstreamer_server(directory) as (url, back):
        session = TalkSession("gst", ClientConfig(url))
        info = await session.start("tester")
        assert info["codec"] == "PCMU"
        with pytest.raises(TalkBusy, match="tester is talking"):
            await session.start("somebody else")
        source = tone(1000, 2.0, 16000)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for i in range(0, len(source), 320):  # 20 ms frames at 16 kHz, resampled to the camera's 8 kHz
            session.push("tester", source[i : i + 320], 16000)
            await asyncio.sleep(max(0.0, begin + (i + 320) / 16000 - loop.time()))
        session.stop("tester")
        await asyncio.sleep(0.3)
        await session.close()
        return decode_g711(back.read_bytes() if back.exists() else b"", "pcmu"), session.packets_sent


@pytest.mark.peer
async def test_a_tone_reaches_gstreamers_onvif_backchannel_with_30_db_snr(tmp_path):
    received, sent = await _talk_to_gstreamer(tmp_path / "first")
    if len(received) == 0:
        # Debian's GStreamer 1.22 sometimes writes nothing from a backchannel session although every
        # packet went out on a playing session (seen in 3 of 25 sessions, never with its debug log on):
        # a start-up race of the peer, so one new session is allowed, and everything else must hold
        assert sent >= 99
        received, sent = await _talk_to_gstreamer(tmp_path / "second")
    assert len(received) >= 1.9 * 8000
    assert snr_db(received[800:-800], 1000, 8000) >= 30


async def _service(sim: SimulatorServer, **camera):
    config = ServiceConfig(cameras=[CameraConfig(id="cam1", url=sim.url("cam1"), **camera)], port=0)
    return running(config)


def _connect(url: str, service):  # type: ignore[no-untyped-def]
    """A client that reads everything, as a browser does: one that stops reading holds back the
    server's close reply behind unread video, and closing waits for the close timeout. `?name=X` in
    `url` logs in as operator X (made if need be), allowed to talk to every camera."""
    url, _, name = url.partition("?name=")
    creds = credentials(service, name or "tester", role="operator")
    return websockets.connect(url, additional_headers=creds.bearer, max_queue=None, max_size=None)


async def _answer(ws) -> dict:
    """The next answer to a talk request (granted, busy, unavailable), skipping everything else."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(message, str) and json.loads(message).get("state") in ("granted", "busy", "unavailable"):
            return json.loads(message)


@pytest.mark.slow
async def test_one_talker_at_a_time_and_live_video_never_stops(caplog):
    async with SimulatorServer([small_camera("cam1")], port=0) as sim, await _service(sim) as (service, base):
        url = base.replace("http", "ws") + "/api/cameras/cam1/live"
        async with _connect(url + "?name=Alice", service) as alice, _connect(url + "?name=Bob", service) as bob:
            video = {"frames": 0}

            async def watch() -> None:
                async for message in bob:
                    if isinstance(message, bytes) and message[0] == 2 and message[1] == 0:
                        video["frames"] += 1
                    elif isinstance(message, str):
                        bob_states.append(json.loads(message))

            bob_states: list[dict] = []
            watcher = asyncio.create_task(watch())
            await asyncio.sleep(1.0)
            frames_before = video["frames"]
            for _ in range(3):  # talk starts and stops, three times
                await alice.send(json.dumps({"type": "talk", "action": "start"}))
                answer = await _answer(alice)
                assert answer["state"] == "granted" and answer["codec"] == "PCMU", answer
                await bob.send(json.dumps({"type": "talk", "action": "start"}))
                await asyncio.sleep(0.2)
                pcm = tone(500, 0.02, 8000).tobytes()
                for i in range(25):
                    await alice.send(encode_talk(i, 8000, pcm))
                    await asyncio.sleep(0.02)
                await alice.send(json.dumps({"type": "talk", "action": "stop"}))
                await asyncio.sleep(0.3)
            watcher.cancel()
            connects = service.cameras["cam1"].session.connects
            frames_during = video["frames"] - frames_before
        sink = sim.cameras["cam1"].sink
    assert any(s.get("state") == "busy" and s.get("talker") == "Alice" for s in bob_states)
    assert any(s.get("talking") == "Alice" for s in bob_states)  # everyone sees who talks
    assert connects == 1 and frames_during > 50  # live video went on, on the same session
    assert len(sink.payload) >= 3 * 25 * 160 * 0.9  # the camera's speaker got the talk


async def test_bad_talk_frames_are_refused_and_logged_and_talk_and_live_survive(caplog):
    async with SimulatorServer([small_camera("cam1")], port=0) as sim, await _service(sim) as (service, base):
        url = base.replace("http", "ws") + "/api/cameras/cam1/live?name=Mallory"
        with caplog.at_level(logging.WARNING):
            async with _connect(url, service) as ws:
                await ws.send(json.dumps({"type": "talk", "action": "start"}))
                assert (await _answer(ws))["state"] == "granted"
                bad = [b"\x03", b"garbage" * 10, encode_talk(1, 44100, bytes(640)), encode_talk(2, 8000, bytes(321)),
                       encode_talk(3, 8000, bytes(4)), encode_talk(4, 8000, bytes(200_000)),
                       encode_talk(5, 8000, bytes(320), captured_us=float("nan"))]
                for message in bad:
                    await ws.send(message)
                await ws.send("{not json")
                await ws.send("x" * 10_000)
                for i in range(10):
                    await ws.send(encode_talk(10 + i, 8000, tone(800, 0.02, 8000).tobytes()))
                    await asyncio.sleep(0.02)
                frames = 0
                while frames < 20:
                    message = await asyncio.wait_for(ws.recv(), 5)
                    frames += isinstance(message, bytes) and message[0] == 2
        runtime = service.cameras["cam1"]
        status = runtime.status()
        received = len(sim.cameras["cam1"].sink.payload)
    assert "talk frame refused" in caplog.text and "control message" in caplog.text
    assert "viewer Mallory left after refusing 9 messages" in caplog.text  # 7 frames, 2 control messages
    assert status["state"] == "playing" and status["talk"]["packets"] >= 9
    assert received >= 9 * 160


@pytest.mark.slow
async def test_half_duplex_mutes_the_camera_to_the_talker_alone_while_talking():
    def counter(counts: dict[str, int], ws):  # type: ignore[no-untyped-def]
        async def count() -> None:
            async for message in ws:
                if isinstance(message, bytes) and message[0] == 2:
                    counts["audio" if message[1] == 1 else "video"] += 1
        return asyncio.create_task(count())

    async with SimulatorServer([small_camera("cam1")], port=0) as sim, \
            await _service(sim, half_duplex=True) as (service, base):
        url = base.replace("http", "ws") + "/api/cameras/cam1/live"
        async with _connect(url + "?name=Alice", service) as alice, _connect(url + "?name=Bob", service) as bob:
            heard = {"Alice": {"audio": 0, "video": 0}, "Bob": {"audio": 0, "video": 0}}
            await alice.send(json.dumps({"type": "talk", "action": "start"}))
            assert (await _answer(alice))["state"] == "granted"
            tasks = [counter(heard["Alice"], alice), counter(heard["Bob"], bob)]
            await asyncio.sleep(0.3)  # what was queued before the grant has gone out
            for counts in heard.values():
                counts.update(audio=0, video=0)
            await asyncio.sleep(1.5)
            talking = {name: dict(counts) for name, counts in heard.items()}
            await alice.send(json.dumps({"type": "talk", "action": "stop"}))
            await asyncio.sleep(0.3)
            heard["Alice"].update(audio=0, video=0)
            await asyncio.sleep(1.0)
            for task in tasks:
                task.cancel()
    assert talking["Alice"]["audio"] == 0 and talking["Alice"]["video"] > 10  # the talker sees, does not hear
    assert talking["Bob"]["audio"] > 40  # everyone else hears the camera
    assert heard["Alice"]["audio"] > 25  # and the talker hears it again once done


async def test_an_idle_backchannel_closes_unless_the_camera_keeps_it_open():
    async with SimulatorServer([small_camera("cam1")], port=0) as sim:
        closing = TalkSession("cam1", ClientConfig(sim.url("cam1")), idle_close=0.3)
        keeping = TalkSession("cam1", ClientConfig(sim.url("cam1")), idle_close=0.3, keep_open=True)
        for session in (closing, keeping):
            await session.start("tester")
            session.push("tester", tone(400, 0.02, 8000), 8000)
            session.stop("tester")
        await asyncio.sleep(0.8)
        assert not closing.open and keeping.open
        await keeping.close()


def _band_power(pcm: np.ndarray, rate: int, low: float = 1500, high: float = 3500) -> float:
    """Mean power of `pcm` in a band the camera's own sound leaves quiet and the voice fills."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs <= high)].sum()) / len(pcm)


def _heard(frames: list[tuple[float, bytes]], start: float, end: float) -> np.ndarray:
    return decode_g711(b"".join(data for t, data in frames if start <= t < end), "pcmu").astype(float) / 32768


@pytest.mark.slow
async def test_viewers_do_not_hear_the_talkers_echo_from_a_doorbell():
    """A doorbell hears its own speaker 150 ms later at -3 dB: what viewers of the service hear
    while someone talks is compared with the camera's microphone heard directly, over the same
    seconds, after two for the canceller to converge."""
    from opticlink.camera.session import CameraSession
    from opticlink.sim.presets import camera
    from opticlink.sim.spec import EchoSettings
    from opticlink.sim.voice import synthetic_speech

    spec = camera("cam1", width=320, height=180, bitrate=300_000, echo=EchoSettings(delay_ms=150, gain_db=-3))
    loop = asyncio.get_running_loop()
    async with SimulatorServer([spec], port=0) as sim, await _service(sim) as (service, base):
        raw: list[tuple[float, bytes]] = []  # the camera's microphone, straight from the camera
        direct = CameraSession(ClientConfig(sim.url("cam1")), reconnect=False,
                               on_unit=lambda track, unit: raw.append((loop.time(), unit.data)) if track == 1 else None)
        direct_task = asyncio.create_task(direct.run())
        url = base.replace("http", "ws") + "/api/cameras/cam1/live"
        cleaned: list[tuple[float, bytes]] = []  # what a viewer of the service hears
        async with _connect(url + "?name=Door", service) as talker, _connect(url + "?name=Eve", service) as viewer:
            async def listen() -> None:
                async for message in viewer:
                    if isinstance(message, bytes) and message[0] == 2 and message[1] == 1:
                        cleaned.append((loop.time(), message[24:]))

            listener = asyncio.create_task(listen())
            await talker.send(json.dumps({"type": "talk", "action": "start"}))
            assert (await _answer(talker))["state"] == "granted"
            await asyncio.sleep(0.5)
            voice = (synthetic_speech(6.0, 8000, level_db=-12) * 32767).astype(np.int16)
            begin = loop.time()
            for i in range(0, len(voice) - 159, 160):  # in real time, as a browser captures
                await talker.send(encode_talk(i // 160, 8000, voice[i : i + 160].tobytes()))
                await asyncio.sleep(max(0.0, begin + (i + 160) / 8000 - loop.time()))
            end = loop.time()
            listener.cancel()
        await direct.stop()
        direct_task.cancel()
    heard_raw, heard_clean = _heard(raw, begin + 2, end), _heard(cleaned, begin + 2, end)
    assert len(heard_raw) > 3 * 8000 and len(heard_clean) > 3 * 8000
    before = _band_power(_heard(cleaned, begin - 0.5, begin), 8000)  # the camera's own sound alone
    assert _band_power(heard_raw, 8000) > 100 * before, "the camera's microphone does not hear the echo"
    reduction = 10 * np.log10(_band_power(heard_raw, 8000) / _band_power(heard_clean, 8000))
    runtime = service.cameras["cam1"]
    echo, pacer = runtime.return_path.echo, runtime.talk.pacer
    seen = (f"the camera's playout restarted {sim.speaker(spec).restarts} times, the microphone re-placed "
            f"{echo.near_anchors - 1} times ({1000 * echo.lead / echo.rate:.0f} ms lead taken off), "
            f"talk slots skipped {pacer.skips} times" if echo is not None and pacer is not None else "no canceller")
    print(f"echo reduction {reduction:.1f} dB; {seen}")
    assert reduction >= 20, f"echo reduced by only {reduction:.1f} dB; {seen}"


async def test_a_speaker_lost_mid_talk_ends_the_talk_with_the_reason_for_every_viewer():
    async with SimulatorServer([small_camera("cam1")], port=0) as sim, await _service(sim) as (service, base):
        url = base.replace("http", "ws") + "/api/cameras/cam1/live"
        async with _connect(url + "?name=Alice", service) as alice, _connect(url + "?name=Bob", service) as bob:
            await alice.send(json.dumps({"type": "talk", "action": "start"}))
            assert (await _answer(alice))["state"] == "granted"
            backchannel = sim.latest_session("cam1")  # the talk session's own connection, opened last
            assert backchannel is not None and backchannel.backchannel_track is not None
            backchannel.connection.abort()  # the camera drops it (a crash, a reboot of its audio)

            async def told(ws) -> dict:  # type: ignore[no-untyped-def]
                while True:
                    message = await asyncio.wait_for(ws.recv(), 5)
                    if isinstance(message, str) and json.loads(message).get("state") == "error":
                        return json.loads(message)

            for ws in (alice, bob):
                said = await told(ws)
                assert said["talking"] is None and "speaker was lost" in said["reason"], said
            assert service.cameras["cam1"].talk.talker is None  # type: ignore[union-attr]


async def test_the_speaker_check_at_start_describes_the_camera_and_opens_no_backchannel():
    """A camera may allow one backchannel at a time, and some click as theirs opens: the service asks
    each camera's description for a speaker at start and sets nothing up."""
    cameras = [small_camera("cam1"), small_camera("cam4", backchannel=False)]
    async with SimulatorServer(cameras, port=0) as sim:
        config = ServiceConfig(cameras=[CameraConfig(id=c.name, url=sim.url(c.name)) for c in cameras], port=0)
        async with running(config) as (service, _):
            door, gate = service.cameras["cam1"].talk, service.cameras["cam4"].talk
            for _ in range(100):
                if door.speaker_seen and gate.no_speaker:
                    break
                await asyncio.sleep(0.1)
            assert door.speaker_seen and door.no_speaker is None
            assert gate.no_speaker is not None and gate.no_speaker.startswith("the camera has no speaker")
            assert door.opens == gate.opens == 0 and not door.open
            assert sim.sessions and all(s.backchannel_track is None for s in sim.sessions)  # every one made so far
