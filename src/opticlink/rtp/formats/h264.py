"""H.264 over RTP (RFC 6184): depacketizer (single NAL, STAP-A, FU-A) and packetizer."""

from __future__ import annotations

import base64
import binascii

from opticlink.media import AccessUnit, VideoConfig, nal_headers
from opticlink.rtp.formats.base import MAX_UNIT_BYTES, NalPacketizer, RtpFormat, UnitAssembly
from opticlink.rtp.jitterbuffer import BufferedPacket

NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 5, 6, 7, 8, 9
STAP_A, FU_A = 24, 28


def non_reference(data: bytes) -> bool:
    """Whether a length-prefixed picture is never used to predict another (every slice has
    nal_ref_idc 0, H.264 7.4.1): a player that is behind may leave it undecoded."""
    slices = [h for h in nal_headers(data) if 1 <= h & 0x1F <= 5]
    return bool(slices) and all(h & 0x60 == 0 for h in slices)


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


class H264Depacketizer(UnitAssembly):
    """Reassembles H.264 access units.

    A unit ends at the marker bit or at a new timestamp. Some cameras set the marker on every
    slice of a frame; when a packet arrives with the timestamp of a unit already ended by its
    marker, the marker is no longer trusted for that stream and units end at timestamp changes
    only, so frames split over several packets with one timestamp stay together.
    """

    codec_name = "H.264"

    def __init__(self, fmt: RtpFormat) -> None:
        super().__init__(VideoConfig("h264", parameter_sets_from_fmtp(fmt.fmtp)))
        self.marker_trusted = True
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

    def _depacketize(self, payload: bytes) -> None:
        if not payload:
            self.malformed += 1
            return
        size = self._size + len(payload)
        if size <= MAX_UNIT_BYTES:  # `_grow`'s test, inline: it runs for every packet
            self._size = size
        elif not self._grow(len(payload)):
            return
        kind = payload[0] & 0x1F
        if kind == FU_A and len(payload) >= 3 and not payload[1] & 0xC0 and self._fu is not None:
            self._fu += payload[2:]  # the middle of a fragmented NAL unit: most packets of a picture
            return
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
                self._add(self._fu)  # kept as gathered (never changed again): the unit's join copies it once
                self._fu = None
        else:
            self.malformed += 1  # STAP-B, MTAP and FU-B need interleaved mode, which we do not offer

    def _add(self, nal: bytes | bytearray) -> None:
        kind = nal[0] & 0x1F
        if kind == NAL_SPS and nal != self.config.parameter_sets[0]:
            self.config = VideoConfig("h264", (bytes(nal), self.config.parameter_sets[1]))
        elif kind == NAL_PPS and nal != self.config.parameter_sets[1]:
            self.config = VideoConfig("h264", (self.config.parameter_sets[0], bytes(nal)))
        elif kind == NAL_IDR:
            self._keyframe = True
        self._keep(nal)


class H264Packetizer(NalPacketizer):
    """Splits access units (lists of NAL units) into RTP packets no larger than `mtu` bytes."""

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
        return self._packets(payloads, timestamp)
