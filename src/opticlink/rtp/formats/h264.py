"""H.264 over RTP (RFC 6184): depacketizer (single NAL, STAP-A, FU-A) and packetizer."""

from __future__ import annotations

import base64
import binascii

from opticlink.rtp.formats.base import (
    MAX_UNIT_BYTES,
    MAX_UNIT_NALUS,
    AccessUnit,
    RtpFormat,
    VideoConfig,
    length_prefixed,
)
from opticlink.rtp.jitterbuffer import BufferedPacket
from opticlink.rtp.packet import build_rtp

NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 5, 6, 7, 8, 9
STAP_A, FU_A = 24, 28


def parameter_sets_from_fmtp(fmtp: dict[str, str]) -> tuple[bytes, bytes]:
    """SPS and PPS from `sprop-parameter-sets` (empty bytes where absent or undecodable)."""
    sps = pps = b""
    for item in fmtp.get("sprop-parameter-sets", "").split(","):
        try:
            nal = base64.b64decode(item.strip(), validate=False)
        except (binascii.Error, ValueError):
            continue
        if nal and nal[0] & 0x1F == NAL_SPS and not sps:
            sps = nal
        elif nal and nal[0] & 0x1F == NAL_PPS and not pps:
            pps = nal
    return sps, pps


def codec_string(sps: bytes) -> str:
    """The RFC 6381 codec string (`avc1.PPCCLL`) WebCodecs asks for, from an SPS."""
    if len(sps) < 4:
        return "avc1.42e01f"
    return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"


def avc_decoder_configuration(sps: bytes, pps: bytes) -> bytes:
    """An avcC record (ISO/IEC 14496-15) from one SPS and one PPS."""
    return (bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
            + b"\x01" + len(pps).to_bytes(2, "big") + pps)


class H264Depacketizer:
    """Reassembles H.264 access units.

    A unit ends at the marker bit or at a new timestamp. Some cameras set the marker on every
    slice of a frame; when a packet arrives with the timestamp of a unit already ended by its
    marker, the marker is no longer trusted for that stream and units end at timestamp changes
    only, so frames split over several packets with one timestamp stay together.
    """

    def __init__(self, fmt: RtpFormat) -> None:
        sps, pps = parameter_sets_from_fmtp(fmt.fmtp)
        self.config = VideoConfig("h264", (sps, pps))
        self.dropped = 0
        self.malformed = 0
        self.problem: str | None = None
        self._size = 0  # payload bytes of the unit being gathered, dropped ones included
        self.marker_trusted = True
        self._nalus: list[bytes] = []
        self._ts: int | None = None
        self._arrival = 0.0
        self._keyframe = False
        self._damaged = False
        self._fu: bytearray | None = None
        self._after_loss = False
        self._ended_ts: int | None = None  # timestamp of the last unit ended by a marker

    def push(self, item: BufferedPacket) -> list[AccessUnit]:
        packet = item.packet
        out: list[AccessUnit] = []
        ts = packet.timestamp
        if self._ts is not None and ts != self._ts:
            out.extend(self._emit())
        elif self._ts is None and ts == self._ended_ts and self.marker_trusted:
            self.marker_trusted = False
        if self._ts is None:
            self._ts = ts
            self._arrival = item.arrival
        self._depacketize(packet.payload)
        if packet.marker and self.marker_trusted:
            self._ended_ts = ts
            out.extend(self._emit())
        return out

    def loss(self) -> None:
        self._fu = None
        if self._ts is not None:
            self._damaged = True
        self._after_loss = True

    def flush(self) -> list[AccessUnit]:
        return self._emit()

    def _depacketize(self, payload: bytes) -> None:
        if not payload:
            self.malformed += 1
            return
        if not self._grow(len(payload)):
            return
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._fu = None
            self._add(payload)
        elif kind == STAP_A:
            offset, n = 1, len(payload)
            while offset + 2 <= n:
                size = int.from_bytes(payload[offset : offset + 2], "big")
                offset += 2
                if size == 0 or offset + size > n:
                    self.malformed += 1
                    self._damaged = True
                    return
                self._add(payload[offset : offset + size])
                offset += size
        elif kind == FU_A:
            if len(payload) < 3:
                self.malformed += 1
                self._damaged = True
                return
            indicator, header = payload[0], payload[1]
            if header & 0x80:
                self._fu = bytearray([(indicator & 0xE0) | (header & 0x1F)])
                self._fu += payload[2:]
            elif self._fu is None:
                self._damaged = True
                return
            else:
                self._fu += payload[2:]
            if header & 0x40 and self._fu is not None:
                self._add(bytes(self._fu))
                self._fu = None
        else:
            self.malformed += 1  # STAP-B, MTAP and FU-B need interleaved mode, which we do not offer

    def _add(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == NAL_SPS and nal != self.config.parameter_sets[0]:
            self.config = VideoConfig("h264", (nal, self.config.parameter_sets[1]))
        elif kind == NAL_PPS and nal != self.config.parameter_sets[1]:
            self.config = VideoConfig("h264", (self.config.parameter_sets[0], nal))
        elif kind == NAL_IDR:
            self._keyframe = True
        if self._damaged:
            return  # dropped at emit anyway: not kept
        if len(self._nalus) == MAX_UNIT_NALUS:
            self.problem = f"H.264 unit of more than {MAX_UNIT_NALUS} NAL units dropped"
            self._damaged = True
            self._nalus = []
            return
        self._nalus.append(nal)

    def _grow(self, size: int) -> bool:
        """Count `size` more bytes into the unit; past `MAX_UNIT_BYTES` the unit is dropped (False)."""
        self._size += size
        if self._size <= MAX_UNIT_BYTES:
            return True
        if self._nalus or self._fu is not None or not self._damaged:
            self.problem = (f"H.264 unit over {MAX_UNIT_BYTES >> 20} MiB dropped (a fragmented NAL unit "
                            f"that never ends, or neither a marker nor a new timestamp)")
        self._damaged = True
        self._nalus = []
        self._fu = None
        return False

    def _emit(self) -> list[AccessUnit]:
        out: list[AccessUnit] = []
        if self._ts is not None and self._nalus and not self._damaged:
            out.append(AccessUnit(self._ts, length_prefixed(self._nalus), self._keyframe, self.config,
                                  self._arrival, discontinuity=self._after_loss))
            self._after_loss = False
        elif self._ts is not None and (self._nalus or self._damaged):
            self.dropped += 1
            self._after_loss = True
        self._nalus = []
        self._ts = None
        self._keyframe = False
        self._damaged = False
        self._fu = None
        self._size = 0
        return out


class H264Packetizer:
    """Splits access units (lists of NAL units) into RTP packets no larger than `mtu` bytes."""

    def __init__(self, payload_type: int, ssrc: int, sequence: int = 0, mtu: int = 1400) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF
        self.mtu = mtu

    def packetize(self, nalus: list[bytes], timestamp: int) -> list[bytes]:
        """Wire-form packets of one access unit, the marker on the last."""
        payloads: list[bytes] = []
        limit = self.mtu - 12
        for nal in nalus:
            if len(nal) <= limit:
                payloads.append(nal)
                continue
            indicator = (nal[0] & 0xE0) | FU_A
            kind = nal[0] & 0x1F
            body = memoryview(nal)[1:]
            chunk = limit - 2
            for start in range(0, len(body), chunk):
                part = body[start : start + chunk]
                header = kind | (0x80 if start == 0 else 0) | (0x40 if start + chunk >= len(body) else 0)
                payloads.append(bytes([indicator, header]) + part)
        packets = []
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            packets.append(build_rtp(self.payload_type, self.sequence, timestamp, self.ssrc, payload,
                                     marker=i == last))
            self.sequence = (self.sequence + 1) & 0xFFFF
        return packets
