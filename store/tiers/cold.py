"""Cold tier: compressed records, read with pread and decoded outside any lock.

Nothing here is shared between readers (each read opens, preads and closes), so a slow
decompression of one chunk never holds up another reader.
"""
from __future__ import annotations

from .. import segments
from .base import ChunkRef
from .disk import DiskTier


class ColdTier(DiskTier):
    name = "cold"

    def read(self, ref: ChunkRef) -> bytes:
        return segments.read_record(ref.file, ref.offset, ref.length)
