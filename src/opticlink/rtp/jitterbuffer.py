"""Jitter buffer: puts one source's RTP packets back in sequence order, with a bounded wait.

Sans-IO: packets come in with their arrival time, in-order packets come out at once, and a gap
holds later packets for at most `max_wait` seconds (`deadline()` says when to `poll()`), after
which the missing packets are declared lost. Large sequence jumps (a camera restarting its
encoder without changing SSRC) are accepted after two consecutive packets agree, as in RFC 3550
appendix A.1, so one corrupt packet cannot derail the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from opticlink.rtp.packet import RtpPacket

# Packets one source's buffer holds behind a gap at most (then the oldest gap is given up). 512 is
# 1.7 s of a 4K stream at 2,000 packets a second, far beyond any wait we allow (`max_wait`, 50 ms);
# at the largest packet an interleaved frame carries (64 KiB) it bounds a track at 32 MiB.
MAX_HELD_PACKETS = 512


@dataclass(slots=True)
class BufferedPacket:
    """A packet released in order, with the extended sequence number and network arrival time."""

    packet: RtpPacket
    ext_seq: int
    arrival: float


@dataclass(slots=True)
class Loss:
    """Packets before the next released one are missing: `count` lost, or a resync (count 0)."""

    count: int
    resync: bool = False


Released = BufferedPacket | Loss


class JitterBuffer:
    """Reorders packets of one SSRC.

    `max_wait`: seconds a gap may hold later packets before they are released and the gap is
    counted as lost. `capacity`: packets held at most (the oldest gap is given up beyond it).
    """

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    def __init__(self, max_wait: float = 0.05, capacity: int = MAX_HELD_PACKETS) -> None:
        self.max_wait = max_wait
        self.capacity = capacity
        self._expected: int | None = None  # extended sequence number released next
        self._held: dict[int, BufferedPacket] = {}
        self._probe: BufferedPacket | None = None  # first packet after a suspicious jump
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.resyncs = 0

    def push(self, packet: RtpPacket, arrival: float) -> list[Released]:
        """Accept a packet; returns what can be released now, in order."""
        seq = packet.sequence
        expected = self._expected
        if expected is not None and seq == expected & 0xFFFF and not self._held:
            # the next packet with nothing held (nearly every packet): released at once, as below
            self._probe = None
            self._expected = expected + 1
            return [BufferedPacket(packet, expected, arrival)]
        if self._expected is None:
            self._expected = seq
            self._probe = None
        expected = self._expected
        delta = (seq - expected) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        if delta > self.MAX_DROPOUT or delta < -self.MAX_MISORDER:
            probe = self._probe
            if probe is None or seq != (probe.packet.sequence + 1) & 0xFFFF:
                self._probe = BufferedPacket(packet, seq, arrival)
                return []
            out = self._flush()
            self.resyncs += 1
            self._probe = None
            base = probe.packet.sequence
            out.append(Loss(0, resync=True))
            out.append(BufferedPacket(probe.packet, base, probe.arrival))
            out.append(BufferedPacket(packet, base + 1, arrival))
            self._expected = base + 2
            return out
        self._probe = None
        ext = expected + delta
        if delta < 0:
            self.late += 1
            return []
        if ext in self._held:
            self.duplicates += 1
            return []
        self._held[ext] = BufferedPacket(packet, ext, arrival)
        out = self._release_in_order()
        if len(self._held) > self.capacity:
            out.extend(self._skip_gap())
        return out

    def deadline(self) -> float | None:
        """When `poll` should next run: the oldest held packet's arrival plus `max_wait`."""
        if not self._held:
            return None
        return min(p.arrival for p in self._held.values()) + self.max_wait

    def poll(self, now: float) -> list[Released]:
        """Give up on gaps whose wait has expired; returns what that releases."""
        out: list[Released] = []
        while self._held:
            deadline = self.deadline()
            if deadline is None or now < deadline:
                break
            out.extend(self._skip_gap())
        return out

    def flush(self) -> list[Released]:
        """Release everything held, in order, counting the gaps as lost."""
        return self._flush()

    def reset(self) -> None:
        self._expected = None
        self._held.clear()
        self._probe = None

    def _flush(self) -> list[Released]:
        out: list[Released] = []
        while self._held:
            out.extend(self._skip_gap())
        return out

    def _release_in_order(self) -> list[Released]:
        out: list[Released] = []
        held = self._held
        expected = self._expected
        assert expected is not None
        while expected in held:
            out.append(held.pop(expected))
            expected += 1
        self._expected = expected
        return out

    def _skip_gap(self) -> list[Released]:
        assert self._expected is not None
        first = min(self._held)
        missing = first - self._expected
        self.lost += missing
        self._expected = first
        out: list[Released] = [Loss(missing)] if missing else []
        out.extend(self._release_in_order())
        return out
