"""The store as the model's ``ExternalMemory``: resident landmarks for scoring, K/V from the tiers."""
from __future__ import annotations

import threading

import torch

from hsa_memory.model.memory import topk_over_landmarks


# chunks whose K/V one ask keeps after reading them (64 × HK × D keys and values each: 32 KiB in fp32 at HK=1, D=64)
KV_PER_ASK = 4096


class ChunkPositions:
    """Chunk id → stream position (for causal visibility), shared by the asks of one memory.

    A chunk's position never changes, so the map only grows. It is kept as sorted tensors so that
    an ask over N chunks costs a vectorised lookup, not N Python steps (≈ 250K chunks at 16M tokens).
    """

    def __init__(self) -> None:
        self.ids = torch.zeros(0, dtype=torch.long)
        self.positions = torch.zeros(0, dtype=torch.long)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def _find(self, chunk_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of ``chunk_ids`` in the index, and which of them are known."""
        if not len(self):
            return torch.zeros_like(chunk_ids), torch.zeros_like(chunk_ids, dtype=torch.bool)
        rows = torch.searchsorted(self.ids, chunk_ids).clamp_max(len(self) - 1)
        return rows, self.ids[rows] == chunk_ids

    def lookup(self, store, chunk_ids: torch.Tensor) -> torch.Tensor:
        """Positions (n,) int64 of ``chunk_ids`` (n,); unknown ids are read from the catalog once."""
        chunk_ids = chunk_ids.long().cpu()
        with self._lock:
            rows, known = self._find(chunk_ids)
            if not bool(known.all()):
                wanted = torch.unique(chunk_ids[~known]).tolist()
                infos = store.chunks(wanted)
                if len(infos) != len(wanted):  # a store view that leaves out forgotten chunks
                    from hsa_memory.store.errors import ChunkNotFound

                    raise ChunkNotFound(sorted(set(wanted) - {i.id for i in infos}))
                ids = torch.cat([self.ids, torch.tensor([i.id for i in infos], dtype=torch.long)])
                positions = torch.cat([self.positions, torch.tensor([i.position for i in infos], dtype=torch.long)])
                order = torch.argsort(ids)
                self.ids, self.positions = ids[order], positions[order]
                rows, _ = self._find(chunk_ids)
            return self.positions[rows]


class StoreMemory:
    """Serves one ask: a snapshot of the landmark matrix plus on-demand K/V reads."""

    def __init__(self, store, positions: ChunkPositions, device: torch.device, dtype: torch.dtype):
        self.store = store
        self.device, self.dtype = device, dtype
        landmarks, chunk_ids = store.landmarks(device=device if device.type == "cuda" else None)
        self.landmarks = landmarks
        self.positions = positions.lookup(store, chunk_ids)
        # on the landmarks' device: top-K maps its rows to ids there, every layer and token
        self.chunk_ids = chunk_ids.long().to(landmarks.device)
        self._kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return int(self.chunk_ids.shape[0])

    def topk(self, queries: torch.Tensor, k: int, visible_upto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self) == 0:
            T, HK = queries.shape[:2]
            return (torch.full((T, HK, k), float("-inf"), device=queries.device),
                    torch.full((T, HK, k), -1, dtype=torch.long, device=queries.device))
        return topk_over_landmarks(self.landmarks, self.positions, self.chunk_ids, queries, k, visible_upto)

    def kv(self, chunk_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # successive tokens of one answer mostly pick the same chunks: each is read from the store once
        ids = chunk_ids.tolist()
        wanted = list(dict.fromkeys(ids))
        missing = [i for i in wanted if i not in self._kv]
        if missing:
            if len(self._kv) + len(missing) > KV_PER_ASK:
                # bound the cache by dropping what this call does not need; clearing it all dropped ids this
                # call still reads (a KeyError in a 16M-token ask, session 12)
                self._kv = {i: self._kv[i] for i in wanted if i in self._kv}
            from hsa_memory.store.errors import ChunkNotFound

            live = missing
            while True:
                try:
                    keys, values = self.store.get_kv(live, device=self.device, dtype=self.dtype)
                    break
                except ChunkNotFound as exc:
                    # these ids come from this ask's landmark snapshot: a forget (maybe by another process)
                    # took them since. Their content is not read any more: zero K/V, so they add nothing
                    gone = set(exc.chunk_ids)
                    if not gone & set(live):
                        raise
                    live = [i for i in live if i not in gone]
            self._kv.update({i: (keys[n], values[n]) for n, i in enumerate(live)})
            if len(live) < len(missing):
                zero = torch.zeros(tuple(self.store.layout.kv_shape), device=self.device, dtype=self.dtype)
                self._kv.update({i: (zero, zero) for i in missing if i not in self._kv})
        return (torch.stack([self._kv[i][0] for i in ids]), torch.stack([self._kv[i][1] for i in ids]))
