"""A camera's speaker: one talker at a time, over a backchannel RTSP session of its own.

The backchannel session is separate from the live one, so starting or stopping talk never
interrupts live video. By default it opens when talk starts and closes `idle_close` seconds after
the last talker stops: holding it open blocks vendor apps and doorbell chimes on many cameras.
`keep_open` keeps it (the camera's own setting). Every sent sample is reported to `on_sent` with
its slot (`TalkPacer`: when the camera plays it, give or take a constant), the reference an echo
canceller needs, and every packet's latency is kept in parts. A backchannel that dies (the camera
closes it, stops answering its keepalives) is noticed at once: the talker loses the speaker, `error`
says why and `on_lost` is told, so the page can say it instead of sending into nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opticlink.errors import OpticLinkError, RtspError
from opticlink.rtp.rtcp import NTP_EPOCH_OFFSET, SenderReport, SourceDescription, seconds_to_ntp, serialize_rtcp
from opticlink.rtsp.aio import RtspClient
from opticlink.rtsp.client import ClientConfig
from opticlink.talk.encoder import TalkEncoder
from opticlink.talk.pacing import TalkPacer

log = logging.getLogger(__name__)


class TalkBusy(OpticLinkError):
    """Someone else is talking to this camera."""

    def __init__(self, talker: str) -> None:
        self.talker = talker
        super().__init__(f"{talker} is talking")


class TalkUnavailable(OpticLinkError):
    """This camera cannot be talked to (no backchannel, refused, talkback off)."""


@dataclass(slots=True)
class PacketLatency:
    """One packet's way from the microphone to the network, in milliseconds."""

    capture: float  # its first sample's capture to the browser sending the frame (frame length included)
    network: float  # the browser sending to its arrival here
    transcode: float  # resampling and encoding
    packetization: float  # waiting here for the packet to fill, then sending
    total: float


class TalkSession:
    """Talk to one camera's speaker."""

    SR_INTERVAL = 1.0

    def __init__(self, name: str, config: ClientConfig, *, packet_ms: int = 20, keep_open: bool = False,
                 idle_close: float = 5.0, on_sent: Callable[[np.ndarray, int, float], None] | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.config = dataclasses.replace(config, backchannel=True, only_backchannel=True)
        self.packet_ms = packet_ms
        self.keep_open = keep_open
        self.idle_close = idle_close
        self.on_sent = on_sent
        self.on_lost = on_lost  # called with the reason when an open backchannel dies
        self.error: str | None = None  # why the backchannel last died or failed to open; None once it opens
        self.no_speaker: str | None = None  # why nobody can talk: the camera said it has no backchannel
        self.speaker_seen = False  # the camera described a backchannel (`check_speaker`) or opened one
        self.talker: str | None = None
        self.client: RtspClient | None = None
        self.encoder: TalkEncoder | None = None
        self.pacer: TalkPacer | None = None
        self.latencies: deque[PacketLatency] = deque(maxlen=10_000)
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_rejected = 0
        self.frames_dropped = 0  # arrived in a burst too far ahead of real time
        self.opens = 0
        self._opening: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._pending: deque[list[float]] = deque()  # [samples not yet sent, arrival, captured, posted]
        self._last_sr = 0.0
        self._watch: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.client is not None and self.encoder is not None

    @property
    def state(self) -> str:
        """`talking` (someone has the speaker), `open`, `error` (it died: see `error`) or `closed`."""
        if self.open:
            return "talking" if self.talker is not None else "open"
        return "error" if self.error is not None else "closed"

    async def start(self, talker: str) -> dict[str, object]:
        """Take the speaker for `talker`; raises `TalkBusy` or `TalkUnavailable`."""
        if self.talker is not None and self.talker != talker:
            raise TalkBusy(self.talker)
        self.talker = talker
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        try:
            await self._open()
        except RtspError as exc:
            self.talker = None
            if self._refused(exc):
                raise TalkUnavailable(self.no_speaker or "") from None
            raise TalkUnavailable(f"the camera's backchannel could not be opened: {exc}") from None
        assert self.encoder is not None
        fmt = self.encoder.format
        return {"codec": fmt.encoding, "rate": self.encoder.rate, "packet_ms": self.packet_ms}

    async def check_speaker(self) -> str | None:
        """Ask the camera whether it has a speaker, before anyone presses talk: its description is
        asked for with the backchannel required, and nothing is set up (a camera may allow one
        backchannel at a time, and some click as theirs opens). Returns, and keeps in `no_speaker`,
        why nobody can talk to it; None when it has a speaker (`speaker_seen`) or could not be asked
        now (unreachable: the question stays open)."""
        if self.open:
            return None
        try:
            await RtspClient(dataclasses.replace(self.config, describe_only=True)).describe()
        except RtspError as exc:
            self._refused(exc)
            return self.no_speaker
        self.speaker_seen, self.no_speaker = True, None
        return None

    def _refused(self, exc: RtspError) -> bool:
        """Note why the backchannel did not open; true when the camera says it has none."""
        self.error = str(exc)
        if exc.step in ("backchannel", "DESCRIBE") and "backchannel" in str(exc):
            self.no_speaker = f"the camera has no speaker to talk to ({str(exc).split(': ', 1)[-1]})"
            return True
        return False

    async def _open(self) -> None:
        if self.open:
            return
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._connect())
        try:
            await asyncio.shield(self._opening)
        finally:
            if self._opening is not None and self._opening.done():
                self._opening = None

    async def _connect(self) -> None:
        client = RtspClient(self.config)
        playing = await client.start()
        track = playing.tracks[0]
        self.encoder = TalkEncoder(track.format, self.packet_ms)
        self.pacer = TalkPacer(self.encoder.rate)
        self.client = client
        self.error = self.no_speaker = None
        self.opens += 1
        self.speaker_seen = True
        self._pending.clear()
        self._watch = asyncio.get_running_loop().create_task(self._watch_closed(client))
        # the first report goes out after a second of audio, never before the first packet: RFC 3550's
        # first interval, and GStreamer's backchannel can drop a whole stream whose report came first
        self._last_sr = asyncio.get_running_loop().time()
        log.info("talk %s: backchannel open (%s, %d ms packets)", self.name, track.format.rtpmap, self.packet_ms)

    async def _watch_closed(self, client: RtspClient) -> None:
        """Notice the backchannel dying under us (not a `close()` of ours)."""
        error = await client.wait_closed()
        if self.client is not client:
            return
        reason = str(error) if error is not None else "the camera closed the backchannel"
        log.warning("talk %s: backchannel lost (%s)%s", self.name, reason,
                    f"; {self.talker} loses the speaker" if self.talker else "")
        self.error = reason
        self.client, self.encoder, self.talker = None, None, None
        self._pending.clear()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.on_lost is not None:
            self.on_lost(reason)

    def stop(self, talker: str) -> None:
        """`talker` lets go of the speaker; the backchannel closes after `idle_close` unless kept open."""
        if talker != self.talker:
            return
        self.talker = None
        if self.open:
            assert self.encoder is not None and self.client is not None
            accepted, held = self.encoder.accepted, self.encoder.held
            packets, tail = self.encoder.drain()  # every sample accepted goes out, the resampler's tail too
            for packet in packets:
                self.client.send_rtp(0, packet)
                self.packets_sent += 1
                self.octets_sent += len(packet) - 12
            if self.pacer is not None:
                if len(tail) and self.on_sent is not None and self.pacer.anchor is not None:
                    slot = self.pacer.anchor + (self.pacer.count - held) / self.pacer.rate
                    self.on_sent(tail, self.encoder.rate, slot)
                self.pacer.advance(self.encoder.accepted - accepted)
            self._pending.clear()
        if not self.keep_open and self.open:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.idle_close, lambda: loop.create_task(self.close()))

    def push(self, talker: str, pcm: np.ndarray, rate: int, captured: float | None = None,
             posted: float | None = None) -> int:
        """Send a frame of `talker`'s 16-bit PCM at `rate`; `captured` is its first sample's capture
        time and `posted` when the browser sent it (Unix seconds). Returns the packets sent."""
        if talker != self.talker or not self.open:
            self.frames_rejected += 1
            return 0
        assert self.encoder is not None and self.client is not None and self.pacer is not None
        arrival = time.time()
        loop_now = asyncio.get_running_loop().time()
        placement = self.pacer.place(loop_now)
        if placement is None:
            self.frames_dropped += 1
            return 0
        ratio = self.encoder.rate / rate
        captured = captured or arrival
        started = time.perf_counter()
        # the pacer counts samples accepted, those the resampler still holds included (`held`): they
        # come out later, each at its own slot, and go out with the tail that ends a talkspurt
        accepted, held = self.encoder.accepted, self.encoder.held
        packets = self.encoder.skip(placement.skip) if placement.skip else []
        if packets:  # the tail that ended the previous talkspurt
            self._account(sum(entry[0] for entry in self._pending), 0.0, time.time())
        if placement.skip and len(self.encoder.drained) and self.on_sent is not None:
            self.on_sent(self.encoder.drained, self.encoder.rate,
                         placement.slot - (placement.skip + held) / self.encoder.rate)
        held = self.encoder.held
        self._pending.append([len(pcm) * ratio, arrival, captured, posted or captured])
        more, sent = self.encoder.encode(pcm, rate)
        packets += more
        self.pacer.advance(self.encoder.accepted - accepted)
        transcoded = time.perf_counter()
        for packet in packets:
            self.client.send_rtp(0, packet)
            self.packets_sent += 1
            self.octets_sent += len(packet) - 12
        done = time.time()
        per_packet = self.encoder.rate * self.packet_ms / 1000
        for _ in packets:
            self._account(per_packet, (transcoded - started) * 1000, done)
        if len(sent) and self.on_sent is not None:  # its first sample follows those the resampler held
            self.on_sent(sent, self.encoder.rate, placement.slot - held / self.encoder.rate)
        if loop_now - self._last_sr >= self.SR_INTERVAL:
            self._last_sr = loop_now
            self._send_report()
        return len(packets)

    def _account(self, samples: float, transcode_ms: float, sent: float) -> None:
        """Latency of a packet of `samples`, from its first sample's frame."""
        if not self._pending:
            return
        _, arrival, captured, posted = self._pending[0]
        remaining = samples
        while self._pending and remaining > 0:
            head = self._pending[0]
            used = min(head[0], remaining)
            head[0] -= used
            remaining -= used
            if head[0] <= 1e-6:
                self._pending.popleft()
        self.latencies.append(PacketLatency((posted - captured) * 1000, (arrival - posted) * 1000, transcode_ms,
                                            (sent - arrival) * 1000 - transcode_ms, (sent - captured) * 1000))

    def _send_report(self) -> None:
        assert self.encoder is not None and self.client is not None and self.pacer is not None
        wall = time.time()
        if self.pacer.anchor is not None:  # the next packet's slot, on the wall clock
            sample = self.pacer.count - self.encoder.pending
            wall += self.pacer.anchor + sample / self.pacer.rate - asyncio.get_running_loop().time()
        report = SenderReport(self.encoder.ssrc, seconds_to_ntp(wall + NTP_EPOCH_OFFSET),
                              self.encoder.timestamp, self.packets_sent, self.octets_sent)
        sdes = SourceDescription([(self.encoder.ssrc, {1: b"opticlink-talk"})])
        self.client.send_rtcp(0, serialize_rtcp([report, sdes]))

    async def close(self) -> None:
        """Close the backchannel (the talker, if any, loses the speaker)."""
        self.talker = None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        client, self.client, self.encoder = self.client, None, None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
            log.info("talk %s: backchannel closed", self.name)

    def latency_stats(self) -> dict[str, object]:
        """p50/p95 of each latency part, milliseconds."""
        if not self.latencies:
            return {"packets": 0}
        out: dict[str, object] = {"packets": len(self.latencies)}
        for part in ("capture", "network", "transcode", "packetization", "total"):
            values = np.array([getattr(x, part) for x in self.latencies])
            out[part] = {"p50_ms": round(float(np.percentile(values, 50)), 2),
                         "p95_ms": round(float(np.percentile(values, 95)), 2)}
        return out
