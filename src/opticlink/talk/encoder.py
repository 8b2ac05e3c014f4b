"""Talk audio to what a camera's backchannel accepts, in RTP packets of the camera's duration.

Talk arrives as 16-bit PCM at 8 or 16 kHz; it is resampled (soxr) to the backchannel's rate if
they differ, encoded (PyAV: G.711 µ-law or A-law, AAC; L16 as big-endian samples) and cut into
packets of `packet_ms` (20 to 160 ms: some cameras only play large packets).
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


class TalkEncoder:
    """PCM frames in; (RTP packets, the PCM actually sent at the camera's rate) out."""

    def __init__(self, fmt: RtpFormat, packet_ms: int = 20, ssrc: int | None = None) -> None:
        self.format = fmt
        self.rate = fmt.clock_rate if fmt.encoding != "MPEG4-GENERIC" else self._aac_rate(fmt)
        self.packet_ms = packet_ms
        ssrc = ssrc if ssrc is not None else random.randrange(1, 1 << 32)
        sequence, timestamp = random.randrange(1 << 16), random.randrange(1 << 32)
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        encoding = fmt.encoding.upper()
        if encoding in ("PCMU", "PCMA"):
            self._g711 = G711Encoder(encoding.lower(), self.rate)
            self._packetizer = G711Packetizer(fmt.payload_type, ssrc, sample_rate=self.rate, packet_ms=packet_ms,
                                              sequence=sequence, timestamp=timestamp)
        elif encoding == "L16":
            self._packetizer = L16Packetizer(fmt.payload_type, ssrc, sample_rate=self.rate, packet_ms=packet_ms,
                                             sequence=sequence, timestamp=timestamp)
        elif encoding == "MPEG4-GENERIC":
            self._aac = av.CodecContext.create("aac", "w")
            self._aac.sample_rate, self._aac.layout, self._aac.format = self.rate, "mono", "fltp"
            self._aac.bit_rate = 32000
            self._aac_pending = np.zeros(0, np.float32)
            self._aac_pts = 0
            self._aac_ts = timestamp
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
        if hasattr(self, "_aac_ts"):
            return self._aac_ts
        return self._packetizer.timestamp

    @property
    def pending(self) -> int:
        """Samples accepted but not yet in a packet."""
        if hasattr(self, "_aac_ts"):
            return len(self._aac_pending)
        return self._packetizer.pending_samples

    def encode(self, pcm: np.ndarray, rate: int) -> tuple[list[bytes], np.ndarray]:
        """Encode 16-bit PCM at `rate`; returns full packets and the samples they carry (camera rate)."""
        samples = self._resample(pcm, rate)
        if not len(samples):
            return [], samples
        encoding = self.format.encoding.upper()
        if encoding in ("PCMU", "PCMA"):
            return self._packetizer.push(self._g711.encode(samples)), samples
        if encoding == "L16":
            return self._packetizer.push(samples.astype(">i2").tobytes()), samples
        return self._encode_aac(samples), samples

    def flush(self) -> list[bytes]:
        """What is left of the last packet, sent short (G.711, L16); AAC keeps whole frames only."""
        flush = getattr(self._packetizer, "flush", None)
        return flush() if flush is not None else []

    def skip(self, samples: int) -> list[bytes]:
        """Leave `samples` of silence unsent: what is pending goes out first (AAC drops its partial
        frame), then the timestamp jumps, so the camera plays the next sample that much later."""
        packets = self.flush()
        if hasattr(self, "_aac_ts"):
            self._aac_pending = np.zeros(0, np.float32)
            self._aac_ts = (self._aac_ts + samples) & 0xFFFFFFFF
        else:
            self._packetizer.skip(samples)
        return packets

    def _resample(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.rate:
            return pcm.astype(np.int16, copy=False)
        stream = self._resamplers.get(rate)
        if stream is None:
            stream = self._resamplers[rate] = soxr.ResampleStream(rate, self.rate, 1, dtype="float32", quality="HQ")
        out = stream.resample_chunk(pcm.astype(np.float32) / 32768.0)
        return np.clip(out * 32768.0, -32768, 32767).astype(np.int16)

    def _encode_aac(self, samples: np.ndarray) -> list[bytes]:
        self._aac_pending = np.concatenate([self._aac_pending, samples.astype(np.float32) / 32768.0])
        packets = []
        while len(self._aac_pending) >= 1024:
            chunk, self._aac_pending = self._aac_pending[:1024], self._aac_pending[1024:]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self._aac_pts
            frame.time_base = Fraction(1, self.rate)
            self._aac_pts += 1024
            for packet in self._aac.encode(frame):
                packets.append(self._packetizer.packetize(bytes(packet), self._aac_ts))
                self._aac_ts = (self._aac_ts + 1024) & 0xFFFFFFFF
        return packets
