"""RTP payload formats, one module per codec: each has its depacketizer and, where we send it, a packetizer."""

from __future__ import annotations

from opticlink.rtp.formats.aac import AacDepacketizer
from opticlink.rtp.formats.base import Depacketizer, RtpFormat
from opticlink.rtp.formats.g711 import G711Depacketizer
from opticlink.rtp.formats.h264 import H264Depacketizer
from opticlink.rtp.formats.h265 import H265Depacketizer
from opticlink.rtp.formats.l16 import L16Depacketizer

__all__ = ["Depacketizer", "RtpFormat", "create_depacketizer", "is_supported"]

_DEPACKETIZERS = {
    "H264": H264Depacketizer,
    "H265": H265Depacketizer,
    "PCMU": G711Depacketizer,
    "PCMA": G711Depacketizer,
    "MPEG4-GENERIC": AacDepacketizer,
    "L16": L16Depacketizer,
}


def is_supported(fmt: RtpFormat) -> bool:
    """Whether we can depacketize this format."""
    return fmt.encoding.upper() in _DEPACKETIZERS


def create_depacketizer(fmt: RtpFormat) -> Depacketizer:
    """A depacketizer for `fmt`; raises ValueError for an encoding we do not handle."""
    try:
        factory = _DEPACKETIZERS[fmt.encoding.upper()]
    except KeyError:
        raise ValueError(f"no depacketizer for RTP encoding {fmt.encoding!r}") from None
    return factory(fmt)
