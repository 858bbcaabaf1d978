"""Lossless cold codec: byte-shuffle the floats, then zstd.

Grouping the high bytes (sign + exponent, few distinct values) apart from the low mantissa bytes
(close to noise) lets zstd's entropy stage shrink the first plane instead of seeing interleaved noise.
"""
from __future__ import annotations

import numpy as np

from ..layout import KVLayout
from .base import Codec, zstd_compress, zstd_decompress


# little-endian words whose byte j is plane j (the file format, whatever the machine)
_WORDS = {2: np.dtype("<u2"), 4: np.dtype("<u4")}


def shuffle(raw: bytes, itemsize: int) -> bytes:
    """Byte planes: all first bytes, then all second bytes, …"""
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, itemsize).T.tobytes()


def unshuffle(planes: bytes, itemsize: int) -> bytes:
    p = np.frombuffer(planes, dtype=np.uint8).reshape(itemsize, -1)
    if itemsize not in _WORDS:
        return p.T.tobytes()
    # shifts and ors over whole planes: several times faster than copying out the transpose
    words = p[0].astype(_WORDS[itemsize])
    for j in range(1, itemsize):
        words |= p[j].astype(_WORDS[itemsize]) << (8 * j)
    return words.tobytes()


class ZstdShuffleCodec(Codec):
    name = "zstd_shuffle"
    lossless = True

    def __init__(self, level: int = 3):
        self.level = level

    def encode(self, raw: bytes, layout: KVLayout) -> bytes:
        return zstd_compress(shuffle(raw, layout.itemsize), self.level)

    def decode(self, record: bytes, layout: KVLayout) -> bytes:
        return unshuffle(zstd_decompress(record), layout.itemsize)

    def params(self) -> dict:
        return {"level": self.level}
