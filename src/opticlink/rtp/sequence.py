"""Unwrapping 16-bit sequence numbers and 32-bit RTP timestamps into ever-growing integers."""

from __future__ import annotations


class Unwrapper:
    """Extends a wrapping counter of `bits` bits to an unbounded integer.

    Each value is placed in the cycle that puts it nearest the previous one, so reordering and
    backward steps of less than half the range unwrap correctly, in both directions.
    """

    __slots__ = ("_half", "_last", "_modulus")

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        last = self._last
        if last is None:
            self._last = value
            return value
        delta = (value - last) % self._modulus
        if delta >= self._half:
            delta -= self._modulus
        extended = last + delta
        self._last = extended
        return extended

    def reset(self) -> None:
        self._last = None


def sequence_unwrapper() -> Unwrapper:
    """An unwrapper for RTP sequence numbers."""
    return Unwrapper(16)


def timestamp_unwrapper() -> Unwrapper:
    """An unwrapper for RTP timestamps."""
    return Unwrapper(32)
