"""The identity codec of the warm tier: records are the raw bytes, read straight from the mmap."""
from __future__ import annotations

from ..layout import KVLayout
from .base import Codec


class RawCodec(Codec):
    name = "raw"
    lossless = True

    def encode(self, raw: bytes, layout: KVLayout) -> bytes:
        return bytes(raw)

    def decode(self, record: bytes, layout: KVLayout) -> bytes:
        return bytes(record)
