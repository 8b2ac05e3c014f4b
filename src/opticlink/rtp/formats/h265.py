"""H.265 over RTP (RFC 7798): depacketizer for single NAL units, aggregation packets and FUs; packetizer."""

from __future__ import annotations

import base64
import binascii

from opticlink.media import AccessUnit, VideoConfig, nal_headers
from opticlink.rtp.formats.base import NalPacketizer, RtpFormat, UnitAssembly
from opticlink.rtp.jitterbuffer import BufferedPacket

NAL_VPS, NAL_SPS, NAL_PPS = 32, 33, 34
AP, FU, PACI = 48, 49, 50
RTP_HEADER = 12
PAYLOAD_HEADER = 2  # the NAL unit header a FU's payload header replaces
FU_HEADER = 1
FU_START, FU_END = 0x80, 0x40


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def non_reference(data: bytes) -> bool:
    """Whether a length-prefixed picture is a sub-layer non-reference picture (every slice's NAL type
    is one of the even types up to 14: TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, RSV_VCL_N*; H.265
    7.4.2.2): no later picture of its sub-layer predicts from it. Cameras send one sub-layer, so a
    player that is behind may leave it undecoded."""
    slices = [(h >> 1) & 0x3F for h in nal_headers(data)]
    slices = [t for t in slices if t < 32]
    return bool(slices) and all(t <= 14 and t % 2 == 0 for t in slices)


def _decode(value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=False)
    except (binascii.Error, ValueError):
        return b""


def unescape_rbsp(nal: bytes) -> bytes:
    """A NAL unit with its emulation-prevention bytes (00 00 03 -> 00 00) removed."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def codec_string(sps: bytes) -> str:
    """The RFC 6381 / ISO 14496-15 `hvc1` codec string from an SPS (profile, tier, level, constraints)."""
    raw = unescape_rbsp(sps)
    if len(raw) < 15:
        return "hvc1.1.6.L93.B0"
    ptl = raw[3:]  # after the 2-byte NAL header and the vps-id / max-sub-layers byte
    profile_space = ("", "A", "B", "C")[ptl[0] >> 6]
    tier = "H" if ptl[0] & 0x20 else "L"
    profile = ptl[0] & 0x1F
    compat = int.from_bytes(ptl[1:5], "big")
    compat_reversed = int(f"{compat:032b}"[::-1], 2)
    constraints = bytes(ptl[5:11]).rstrip(b"\x00")
    suffix = "".join(f".{b:X}" for b in constraints) or ".0"
    return f"hvc1.{profile_space}{profile}.{compat_reversed:X}.{tier}{ptl[11]}{suffix}"


def hevc_decoder_configuration(vps: bytes, sps: bytes, pps: bytes) -> bytes:
    """An hvcC record (ISO/IEC 14496-15) from one VPS, SPS and PPS.

    Profile, tier, level and constraint flags come from the SPS; chroma format 4:2:0 and 8-bit
    depth are assumed (what cameras send), which decoders re-read from the SPS anyway."""
    raw = unescape_rbsp(sps)
    ptl = raw[3:15] if len(raw) >= 15 else bytes([1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93])
    out = bytearray([1, ptl[0]]) + ptl[1:5] + ptl[5:11] + bytes([ptl[11]])
    out += bytes([0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0x00, 0x00, 0x0F])  # no parallelism, 4:2:0, 8 bit, 4-byte lengths
    out.append(3)
    for nal_type, nal in ((NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)):
        out += bytes([0x80 | nal_type]) + (1).to_bytes(2, "big") + len(nal).to_bytes(2, "big") + nal
    return bytes(out)


class H265Depacketizer(UnitAssembly):
    """Reassembles H.265 access units; a unit ends at the marker bit or a new timestamp.

    DONL/DOND fields are skipped when `sprop-max-don-diff` is above 0; units are delivered in
    transmission order, which is decoding order for the single-stream transmission cameras use.
    """

    codec_name = "H.265"

    def __init__(self, fmt: RtpFormat) -> None:
        vps = _decode(fmt.fmtp.get("sprop-vps", ""))
        sps = _decode(fmt.fmtp.get("sprop-sps", ""))
        pps = _decode(fmt.fmtp.get("sprop-pps", ""))
        super().__init__(VideoConfig("h265", (vps, sps, pps)))
        try:
            self._donl = int(fmt.fmtp.get("sprop-max-don-diff", "0")) > 0
        except ValueError:
            self._donl = False

    def push(self, item: BufferedPacket) -> list[AccessUnit]:
        packet = item.packet
        out: list[AccessUnit] = []
        if self._ts is not None and packet.timestamp != self._ts:
            out.extend(self._emit())
        if self._ts is None:
            self._ts = packet.timestamp
            self._arrival = item.arrival
        self._depacketize(packet.payload)
        if packet.marker:
            out.extend(self._emit())
        return out

    def _depacketize(self, payload: bytes) -> None:
        if len(payload) < 3:
            self.malformed += 1
            self._damaged = True
            return
        if not self._grow(len(payload)):
            return
        kind = nal_type(payload)
        if kind == AP:
            offset, n = 2, len(payload)
            first = True
            while offset < n:
                if self._donl:
                    offset += 2 if first else 1
                first = False
                if offset + 2 > n:
                    self.malformed += 1
                    self._damaged = True
                    return
                size = int.from_bytes(payload[offset : offset + 2], "big")
                offset += 2
                if size < 2 or offset + size > n:
                    self.malformed += 1
                    self._damaged = True
                    return
                self._add(payload[offset : offset + size])
                offset += size
        elif kind == FU:
            header = payload[2]
            body_start = 3
            if header & 0x80:
                if self._donl:
                    body_start += 2
                fu_type = header & 0x3F
                self._fu = bytearray([(payload[0] & 0x81) | (fu_type << 1), payload[1]])
                self._fu += payload[body_start:]
            elif self._fu is None:
                self._damaged = True
                return
            else:
                self._fu += payload[body_start:]
            if header & 0x40 and self._fu is not None:
                self._add(bytes(self._fu))
                self._fu = None
        elif kind == PACI:
            self.malformed += 1
        else:
            self._fu = None
            self._add(payload)

    def _add(self, nal: bytes) -> None:
        kind = nal_type(nal)
        vps, sps, pps = self.config.parameter_sets
        if kind == NAL_VPS and nal != vps:
            self.config = VideoConfig("h265", (nal, sps, pps))
        elif kind == NAL_SPS and nal != sps:
            self.config = VideoConfig("h265", (vps, nal, pps))
        elif kind == NAL_PPS and nal != pps:
            self.config = VideoConfig("h265", (vps, sps, nal))
        elif 16 <= kind <= 21:
            self._keyframe = True
        self._keep(nal)


class H265Packetizer(NalPacketizer):
    """Splits access units (lists of NAL units) into RTP packets no larger than `mtu` bytes.

    Single NAL unit packets, and fragmentation units for larger NAL units; no aggregation, no DONL
    (sprop-max-don-diff 0)."""

    def packetize(self, nalus: list[bytes], timestamp: int) -> list[bytes]:
        """Wire-form packets of one access unit, the marker on the last."""
        payloads: list[bytes] = []
        limit = self.mtu - RTP_HEADER
        for nal in nalus:
            if len(nal) <= limit:
                payloads.append(nal)
                continue
            header = bytes([(nal[0] & 0x81) | (FU << 1), nal[1]])  # F, layer id high bit; type FU; layer id, TID
            kind = nal_type(nal)
            body = memoryview(nal)[PAYLOAD_HEADER:]
            chunk = limit - PAYLOAD_HEADER - FU_HEADER
            for start in range(0, len(body), chunk):
                flags = (FU_START if start == 0 else 0) | (FU_END if start + chunk >= len(body) else 0)
                payloads.append(header + bytes([flags | kind]) + body[start : start + chunk])
        return self._packets(payloads, timestamp)
