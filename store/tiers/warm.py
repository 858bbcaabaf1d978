"""Warm tier: uncompressed records read straight out of a memory map of their segment."""
from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from pathlib import Path

from ..errors import StoreCorrupted
from .base import ChunkRef
from .disk import DiskTier


# maps kept open per process; an old one may pin a segment another process already deleted
MAX_MAPS = 256


class WarmTier(DiskTier):
    name = "warm"

    def __init__(self, layout):
        super().__init__(layout)
        self._lock = threading.Lock()
        self._maps: OrderedDict[Path, mmap.mmap] = OrderedDict()

    def read(self, ref: ChunkRef) -> bytes:
        end = ref.offset + ref.length
        m = self._maps.get(ref.file)
        if m is None or len(m) < end:
            m = self._map(ref.file)
        if len(m) < end:
            raise StoreCorrupted(f"{ref.file}: chunk {ref.chunk_id} ends at byte {end}, file has {len(m)}")
        return m[ref.offset: end]

    def _map(self, path: Path) -> mmap.mmap:
        # a segment that grew since it was mapped is mapped again; readers holding the old map
        # keep it alive until they drop it, so nothing is unmapped under a reader
        fd = os.open(path, os.O_RDONLY)
        try:
            m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        with self._lock:
            self._maps[path] = m
            self._maps.move_to_end(path)
            while len(self._maps) > MAX_MAPS:
                self._maps.popitem(last=False)
        return m

    def remove(self, ref: ChunkRef) -> None:
        self.drop_file(ref.file)

    def drop_file(self, path: Path) -> None:
        with self._lock:
            self._maps.pop(path, None)

    def close(self) -> None:
        with self._lock:
            self._maps.clear()
