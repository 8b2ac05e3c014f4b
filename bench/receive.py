"""The receive path's CPU per packet, layer by layer, on replayed camera traffic (no sockets, no clock).

Captures `--seconds` of one simulated camera (1920x1080 H.264 at 4 Mbit/s plus G.711 µ-law, over RTSP
interleaved in TCP, as bench/record.py's) as the bytes each read returned and when, then replays them
through our sans-IO cores, `--rounds` times, one more layer each pass:

- `read`: the RTSP byte stream split into interleaved frames (`RtspReader`), the floor;
- `client`: the RTSP client connection and its events (`RtspClientConnection`);
- `ingest`: RTP parsed, counted, reordered and depacketized into access units (`CameraIngest`);
- `frames`: the camera session: sync engine and frame merger, frames out (`CameraSession`);
- `bus`: the frames published on the camera's bus, taken by the live feed inline (no viewer) and
  queued for a recorder;
- `bus_paced`: the same, each read replayed when it came (`--seconds` a round), the process idle in
  between as it is live. On this 2-core VM it costs about 4 times `bus` per packet: a process waking
  from idle runs cold (caches, predictors), about 150 µs a wake-up here, more than the reads' work.

Prints JSON: CPU µs per RTP packet for each layer (cumulative, the median of the rounds), each layer's
own part, each layer's cost over the floor's (ratios, so the machine's speed drops out), and the whole
path in CPU seconds per camera-minute, back to back and paced. A profile of the
whole path is `--profile` (cProfile, top functions on stderr).

    .venv/bin/python bench/receive.py [--seconds 20] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from opticlink.camera.session import CameraSession
from opticlink.hub import FrameBus
from opticlink.live.feed import LiveFeed
from opticlink.media import MediaFrame
from opticlink.rtsp.client import ClientConfig, RtpReceived, RtspClientConnection
from opticlink.rtsp.message import RtspReader

Chunk = tuple[bytes, float]


async def capture(url: str, seconds: float) -> list[Chunk]:
    """What each read of a real connection returned, and when (loop time), for `seconds` after PLAY."""
    from opticlink.rtsp.aio import RtspClient

    chunks: list[Chunk] = []
    client = RtspClient(ClientConfig(url, transport="tcp"))
    receive = client.connection.receive_data

    def keep(data: bytes | memoryview, now: float) -> None:
        chunks.append((bytes(data), now))
        receive(data, now)

    client.connection.receive_data = keep  # type: ignore[method-assign]
    await client.start()
    await asyncio.sleep(seconds)
    await client.close()
    return chunks


class _Loop:
    """Timers the session arms, never fired: the replay is in order, no jitter buffer gap waits."""

    class _Handle:
        def cancel(self) -> None:
            pass

    def call_at(self, when: float, callback: object) -> _Handle:
        return self._Handle()


class _Client:
    def send_rtcp(self, track: int, data: bytes) -> None:
        pass


def replay(url: str, chunks: list[Chunk], layer: str, *, paced: bool = False) -> tuple[float, int, int]:
    """Feed `chunks` through the cores up to `layer`; (CPU seconds, RTP packets, frames). `paced`: each
    read when it came, the process idle in between, as live (only the reads' own work is timed)."""
    packets = 0
    if layer == "read":
        reader = RtspReader()
        start = time.process_time()
        for data, _ in chunks:
            packets += len(reader.feed(data))
        return time.process_time() - start, packets, 0
    connection = RtspClientConnection(ClientConfig(url, transport="tcp"))
    connection.start(chunks[0][1], "127.0.0.1")
    bus = FrameBus("cam")
    feed = LiveFeed("cam")
    bus.subscribe_inline("live", feed.take)
    recorder = bus.subscribe("recorder", policy="keep")
    count = [0]
    now = chunks[0][1]

    def publish(frame: MediaFrame) -> None:
        count[0] += 1
        if layer == "bus":
            bus.publish(frame, now)

    session = CameraSession(ClientConfig(url), name="cam", on_frame=publish if layer in ("frames", "bus") else None)
    session.epoch = chunks[0][1]
    session.client = _Client()  # type: ignore[assignment]
    session._loop = _Loop()  # type: ignore[assignment]
    began = time.monotonic()
    on_event = session._on_event if layer != "client" else None
    start = time.process_time()
    idle = 0.0
    for data, now in chunks:
        if paced:
            asleep = time.process_time()
            time.sleep(max(0.0, now - chunks[0][1] - (time.monotonic() - began)))
            idle += time.process_time() - asleep
        connection.receive_data(data, now)
        connection.data_to_send()
        while (event := connection.next_event()) is not None:
            if event.__class__ is RtpReceived:
                packets += 1
            if on_event is not None:
                on_event(event)
        if on_event is not None:
            session._on_drained()
        if layer == "bus":
            recorder.get_nowait()
    elapsed = time.process_time() - start - idle
    return elapsed, packets, count[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=18574)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    opticlink = os.path.join(os.path.dirname(sys.executable), "opticlink")
    sim = subprocess.Popen([opticlink, "sim", "--cameras", "1", "--port", str(args.port), "--size", "1920x1080",
                            "--bitrate", "4000000", "--audio", "pcmu"], stdout=subprocess.PIPE, text=True)
    try:
        url = sim.stdout.readline().strip()
        print(f"capturing {args.seconds:g} s of {url}", file=sys.stderr, flush=True)
        chunks = asyncio.run(capture(url, args.seconds))
    finally:
        sim.terminate()
        sim.wait()
    layers = ("read", "client", "ingest", "frames", "bus")
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(replay, url, chunks, "bus")
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    times: dict[str, list[float]] = {layer: [] for layer in (*layers, "bus_paced")}
    packets = frames = 0
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for layer in layers:
            cpu, packets, counted = replay(url, chunks, layer)
            frames = max(frames, counted)
            times[layer].append(cpu)
        times["bus_paced"].append(replay(url, chunks, "bus", paced=True)[0])
    us = {layer: statistics.median(t) / packets * 1e6 for layer, t in times.items()}
    print(json.dumps({
        "benchmark": "receive",
        "stream": "1920x1080 H.264 4 Mbit/s + G.711 PCMU 8 kHz, RTSP interleaved over TCP, replayed",
        "seconds": args.seconds, "reads": len(chunks), "rtp_packets": packets, "frames": frames,
        "us_per_packet": {layer: round(v, 2) for layer, v in us.items()},
        "us_per_packet_of_layer_alone": {layer: round(us[layer] - (us[layers[i - 1]] if i else 0.0), 2)
                                         for i, layer in enumerate(layers)},
        "ratio_to_read": {layer: round(v / us["read"], 2) for layer, v in us.items()},
        "cpu_s_per_camera_minute": {layer: round(us[layer] * packets / args.seconds * 60 / 1e6, 3)
                                    for layer in ("bus", "bus_paced")},
        "machine": {"cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }, indent=2))


if __name__ == "__main__":
    main()
