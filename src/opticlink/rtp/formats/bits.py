"""Reading bit fields MSB first, as codec headers pack them (AAC AudioSpecificConfig, H.264/H.265 SPS)."""

from __future__ import annotations

MAX_EXP_GOLOMB_ZEROS = 31  # a longer Exp-Golomb prefix encodes no value a parameter set can hold


class BitReader:
    """Bit fields of `data`; running past its end, or a malformed Exp-Golomb code, raises `error`."""

    __slots__ = ("data", "error", "pos")

    def __init__(self, data: bytes, error: type[Exception] = ValueError) -> None:
        self.data = data
        self.error = error
        self.pos = 0

    def read(self, count: int) -> int:
        """An unsigned field of `count` bits (ITU-T u(n))."""
        if self.pos + count > 8 * len(self.data):
            raise self.error("bit field runs past the end of its data")
        value = 0
        for _ in range(count):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        """An unsigned Exp-Golomb code (ue(v))."""
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_ZEROS:
                raise self.error("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.read(zeros)

    def se(self) -> int:
        """A signed Exp-Golomb code (se(v))."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)
