"""Talk audio to what a camera's backchannel accepts, in RTP packets of the camera's duration.

Talk arrives as 16-bit PCM at 8 or 16 kHz; it is resampled (soxr) to the backchannel's rate if
they differ, encoded (PyAV: G.711 µ-law or A-law, AAC; L16 as big-endian samples) and cut into
packets of `packet_ms` (20 to 160 ms: some cameras only play large packets).

A talkspurt ends (`drain`, at `skip` and when the talker stops) with every sample sent: the
resampler's tail (soxr holds up to ~130 ms), the packet under way sent short, and for AAC the last
partial frame padded with silence and the frames the encoder still holds. AAC packets carry
their encoder pts as RTP time: the encoder's priming frame (FFmpeg's `initial_padding`, 1024
samples, which its decoder needs to rebuild the first real frame) is stamped a frame before the
talker's first sample, so that sample plays at its intended timestamp instead of 64 ms (at 16 kHz)
late.
"""

from __future__ import annotations

import random
from fractions import Fraction

import av
import numpy as np
import soxr

from opticlink.dsp.g711 import G711Encoder
from opticlink.rtp.formats.aac import AacPacketizer, audio_specific_config
from opticlink.rtp.formats.base import RtpFormat
from opticlink.rtp.formats.g711 import G711Packetizer
from opticlink.rtp.formats.l16 import L16Packetizer

AAC_FRAME = 1024
_MASK = 0xFFFFFFFF


class TalkEncoder:
    """PCM frames in; (RTP packets, the PCM actually sent at the camera's rate) out.

    `accepted` counts the samples taken in at the camera's rate, those the resampler still holds
    (`held`) included: a pacer advanced by it keeps in step with the talker, and `timestamp` plus
    `pending` is the RTP time just past the last sample accepted."""

    def __init__(self, fmt: RtpFormat, packet_ms: int = 20, ssrc: int | None = None) -> None:
        self.format = fmt
        self.rate = fmt.clock_rate if fmt.encoding != "MPEG4-GENERIC" else self._aac_rate(fmt)
        self.packet_ms = packet_ms
        ssrc = ssrc if ssrc is not None else random.randrange(1, 1 << 32)
        sequence, timestamp = random.randrange(1 << 16), random.randrange(1 << 32)
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._counts: dict[int, list[int]] = {}  # per resampler: [samples in, samples out]
        self.accepted = 0
        self.drained = np.zeros(0, np.int16)  # what the last drain sent that `encode` had not returned
        encoding = fmt.encoding.upper()
        self._is_aac = encoding == "MPEG4-GENERIC"
        if encoding in ("PCMU", "PCMA"):
            self._g711 = G711Encoder(encoding.lower(), self.rate)
            self._packetizer = G711Packetizer(fmt.payload_type, ssrc, sample_rate=self.rate, packet_ms=packet_ms,
                                              sequence=sequence, timestamp=timestamp)
        elif encoding == "L16":
            self._packetizer = L16Packetizer(fmt.payload_type, ssrc, sample_rate=self.rate, packet_ms=packet_ms,
                                             sequence=sequence, timestamp=timestamp)
        elif encoding == "MPEG4-GENERIC":
            self._aac: av.AudioCodecContext | None = None  # opened by the first samples after a drain
            self._aac_pending = np.zeros(0, np.float32)
            self._aac_pts = 0  # pts of the next frame into the encoder
            self._aac_base = timestamp & _MASK  # RTP time of the encoder's pts 0, its first input sample
            self._aac_fed = 0  # samples into the encoder, its partial frame included
            self._aac_next = 0  # pts of the encoder's next packet
            self._aac_end: int | None = None  # RTP time just past the last packet sent
            self._packetizer = AacPacketizer(fmt.payload_type, ssrc, sequence)
            self.config = audio_specific_config(self.rate, 1)
        else:
            raise ValueError(f"cannot send {fmt.encoding!r} to a camera")
        self.ssrc = ssrc

    @staticmethod
    def _aac_rate(fmt: RtpFormat) -> int:
        return fmt.clock_rate

    @property
    def timestamp(self) -> int:
        """RTP timestamp of the next sample to be sent."""
        if self._is_aac:
            return (self._aac_base + self._aac_next) & _MASK
        return self._packetizer.timestamp

    @property
    def pending(self) -> int:
        """Samples accepted but not yet in a packet (in the resampler, the encoder or the packetizer)."""
        if self._is_aac:
            return self.held + self._aac_fed - self._aac_next
        return self.held + self._packetizer.pending_samples

    @property
    def held(self) -> int:
        """Samples accepted (at the camera's rate) that the resamplers have not given out yet."""
        return sum(max(0, n_in * self.rate // rate - n_out) for rate, (n_in, n_out) in self._counts.items())

    def encode(self, pcm: np.ndarray, rate: int) -> tuple[list[bytes], np.ndarray]:
        """Encode 16-bit PCM at `rate`; returns full packets and the samples they carry (camera rate)."""
        samples = self._resample(pcm, rate)
        if not len(samples):
            return [], samples
        return self._encode(samples), samples

    def drain(self) -> tuple[list[bytes], np.ndarray]:
        """End the talkspurt with every accepted sample sent: the resamplers' tails, the last packet
        sent short (G.711, L16) or, for AAC, the partial frame padded with silence and the encoder's
        delayed frames. Returns the packets and the samples (camera rate) `encode` had not returned.
        The encoder goes on afterwards: the next samples start a new resampler (and AAC encoder)."""
        tail = self._drain_resamplers()
        packets = self._encode(tail) if len(tail) else []
        packets += self._drain_aac() if self._is_aac else self._packetizer.flush()
        self.drained = tail
        return packets, tail

    def flush(self) -> list[bytes]:
        """`drain()`'s packets: everything accepted, sent."""
        return self.drain()[0]

    def skip(self, samples: int) -> list[bytes]:
        """Leave `samples` of silence unsent: what is accepted goes out first (`drain`, its samples
        in `drained`), then the timestamp jumps, so the camera plays the next sample that much later.
        AAC fills a gap shorter than two frames with encoded silence instead: a new encoder's priming
        frame, stamped before its first sample, would not fit in it."""
        if self._is_aac and self._aac is not None and samples < 2 * AAC_FRAME:
            self.drained = self._drain_resamplers()
            return self._encode(np.concatenate([self.drained, np.zeros(samples, np.int16)]))
        packets, _ = self.drain()
        if self._is_aac:
            self._aac_base = (self._aac_base + samples) & _MASK
        else:
            self._packetizer.skip(samples)
        return packets

    def _encode(self, samples: np.ndarray) -> list[bytes]:
        encoding = self.format.encoding.upper()
        if encoding in ("PCMU", "PCMA"):
            return self._packetizer.push(self._g711.encode(samples))
        if encoding == "L16":
            return self._packetizer.push(samples.astype(">i2").tobytes())
        return self._encode_aac(samples)

    def _resample(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        tail = self._drain_resamplers(keep=rate) if self._resamplers else np.zeros(0, np.int16)  # a new rate
        if rate == self.rate:
            self.accepted += len(pcm)
            out = pcm.astype(np.int16, copy=False)
        else:
            stream = self._resamplers.get(rate)
            if stream is None:
                stream = self._resamplers[rate] = soxr.ResampleStream(rate, self.rate, 1, dtype="float32",
                                                                      quality="HQ")
                self._counts[rate] = [0, 0]
            counts = self._counts[rate]
            before = counts[0] * self.rate // rate
            counts[0] += len(pcm)
            self.accepted += counts[0] * self.rate // rate - before
            out = _to_int16(stream.resample_chunk(pcm.astype(np.float32) / 32768.0))
            counts[1] += len(out)
        return np.concatenate([tail, out]) if len(tail) else out

    def _drain_resamplers(self, keep: int | None = None) -> np.ndarray:
        """What the resamplers (all but `keep`'s) still hold; they are closed, the next samples open new ones."""
        tails = []
        for rate in [r for r in self._resamplers if r != keep]:
            stream = self._resamplers.pop(rate)
            n_in, n_out = self._counts.pop(rate)
            tail = _to_int16(stream.resample_chunk(np.zeros(0, np.float32), last=True))
            self.accepted += n_out + len(tail) - n_in * self.rate // rate  # exactly what came out
            tails.append(tail)
        return np.concatenate(tails) if tails else np.zeros(0, np.int16)

    def _open_aac(self) -> None:
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate, ctx.layout, ctx.format = self.rate, "mono", "fltp"
        ctx.bit_rate = 32000
        ctx.time_base = Fraction(1, self.rate)
        self._aac, self._aac_pts, self._aac_fed, self._aac_next = ctx, 0, 0, 0
        if self._aac_end is not None:  # its priming frame, before its first sample, must follow what was sent
            overlap = (self._aac_end + AAC_FRAME - self._aac_base) & _MASK
            if 0 < overlap < 1 << 31:
                self._aac_base = (self._aac_base + overlap) & _MASK
                self.accepted += overlap  # the talkspurt starts that much later: the pacer follows

    def _encode_aac(self, samples: np.ndarray) -> list[bytes]:
        if self._aac is None:
            self._open_aac()
        assert self._aac is not None
        self._aac_pending = np.concatenate([self._aac_pending, samples.astype(np.float32) / 32768.0])
        self._aac_fed += len(samples)
        packets = []
        while len(self._aac_pending) >= AAC_FRAME:
            chunk, self._aac_pending = self._aac_pending[:AAC_FRAME], self._aac_pending[AAC_FRAME:]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self._aac_pts
            frame.time_base = Fraction(1, self.rate)
            self._aac_pts += AAC_FRAME
            packets += self._aac_packets(self._aac.encode(frame))
        return packets

    def _drain_aac(self) -> list[bytes]:
        """The partial frame padded with silence, then what the encoder holds; the next samples open a
        new encoder whose first sample follows the last one accepted (the padding lies in the gap)."""
        if self._aac is None:
            return []
        fed = self._aac_fed
        packets = self._encode_aac(np.zeros(-fed % AAC_FRAME, np.int16)) if fed % AAC_FRAME else []
        packets += self._aac_packets(self._aac.encode(None))
        self._aac = None
        self._aac_base = (self._aac_base + fed) & _MASK
        self._aac_pts = self._aac_fed = self._aac_next = 0
        return packets

    def _aac_packets(self, encoded: list[av.Packet]) -> list[bytes]:
        """Each packet at its pts on the RTP clock: the priming frame (pts -1024) before sample 0."""
        packets = []
        for packet in encoded:
            pts = packet.pts if packet.time_base in (None, Fraction(1, self.rate)) else \
                round(packet.pts * packet.time_base * self.rate)
            timestamp = (self._aac_base + pts) & _MASK
            packets.append(self._packetizer.packetize(bytes(packet), timestamp))
            self._aac_next = pts + AAC_FRAME
            self._aac_end = (timestamp + AAC_FRAME) & _MASK
        return packets


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)
