"""Hot tier: an LRU of decoded chunks under a byte budget, in RAM or on a device."""
from __future__ import annotations

import threading
from collections import OrderedDict

from .base import KV, ChunkRef, Tier


class HotTier(Tier):
    name = "hot"

    def __init__(self, budget_bytes: int, device: str | None = None):
        self.budget_bytes = budget_bytes
        self.device = device
        self._lock = threading.Lock()
        # keyed by (id, kv_sha256): a lossy re-encode elsewhere changes the key, so no stale hit
        self._entries: OrderedDict[tuple[int, str], tuple[KV, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def entries(self) -> int:
        return len(self._entries)

    def contains(self, ref: ChunkRef) -> bool:
        with self._lock:
            return (ref.chunk_id, ref.kv_sha256) in self._entries

    def get(self, ref: ChunkRef) -> KV | None:
        key = (ref.chunk_id, ref.kv_sha256)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, ref: ChunkRef, kv: KV) -> None:
        keys, values = kv
        if self.device is not None:
            keys, values = keys.to(self.device), values.to(self.device)
        size = keys.nbytes + values.nbytes
        if size > self.budget_bytes:
            return
        if keys.untyped_storage().nbytes() + values.untyped_storage().nbytes() > 2 * size:
            # a view into a batch read would pin the whole batch: keep a copy of just this chunk
            keys, values = keys.clone(), values.clone()
        key = (ref.chunk_id, ref.kv_sha256)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = ((keys, values), size)
            self.bytes += size
            while self.bytes > self.budget_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.bytes -= evicted

    def remove(self, ref: ChunkRef) -> None:
        self.remove_ids({ref.chunk_id})

    def remove_ids(self, chunk_ids: set[int]) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] in chunk_ids]:
                self.bytes -= self._entries.pop(key)[1]

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0
