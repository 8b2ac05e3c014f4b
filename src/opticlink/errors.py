"""Errors shared by every layer: each says which step failed and what was received."""


class OpticLinkError(Exception):
    """Base of every error OpticLink raises on purpose."""


class ParseError(OpticLinkError, ValueError):
    """Bytes from the network that do not follow their protocol's grammar."""


class RtspParseError(ParseError):
    """A malformed RTSP message or interleaved frame."""


class SdpParseError(ParseError):
    """A malformed session description."""


class RtpParseError(ParseError):
    """A malformed RTP packet."""


class RtcpParseError(ParseError):
    """A malformed RTCP compound packet."""


class RtspError(OpticLinkError):
    """An RTSP session that could not go on: which step, and what the camera answered."""

    def __init__(self, step: str, message: str, status: int | None = None) -> None:
        self.step = step
        self.status = status
        super().__init__(f"{step}: {message}")
