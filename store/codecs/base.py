"""What a K/V codec is: raw chunk bytes in, stored record bytes out, and back."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import zstandard

from ..layout import KVLayout


class Codec(ABC):
    """Turns one chunk's raw K/V (keys then values, layout dtype) into a stored record and back."""

    name: str
    # lossless codecs must give back the exact bytes; verify() checks that against kv_sha256
    lossless: bool

    @abstractmethod
    def encode(self, raw: bytes, layout: KVLayout) -> bytes: ...

    @abstractmethod
    def decode(self, record: bytes, layout: KVLayout) -> bytes: ...

    def params(self) -> dict:
        """What the segment header records beside the codec name."""
        return {}


class _ZstdContexts(threading.local):
    """zstd (de)compressor objects are not thread-safe; each thread gets its own."""

    def __init__(self) -> None:
        self.compressors: dict[int, zstandard.ZstdCompressor] = {}
        self.decompressor = zstandard.ZstdDecompressor()


_contexts = _ZstdContexts()


def zstd_compress(data: bytes, level: int) -> bytes:
    comp = _contexts.compressors.get(level)
    if comp is None:
        comp = _contexts.compressors[level] = zstandard.ZstdCompressor(level=level)
    return comp.compress(data)


def zstd_decompress(data: bytes) -> bytes:
    return _contexts.decompressor.decompress(data)
