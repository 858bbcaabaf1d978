"""The store as the model's ``ExternalMemory``: resident landmarks for scoring, K/V from the tiers."""
from __future__ import annotations

import torch

from hsa_memory.model.memory import topk_over_landmarks


class StoreMemory:
    """Serves one ask: a snapshot of the landmark matrix plus on-demand K/V reads.

    Chunk positions (for causal visibility) are looked up once per chunk id and cached by the caller.
    """

    def __init__(self, store, positions_cache: dict[int, int], device: torch.device, dtype: torch.dtype):
        self.store = store
        self.device, self.dtype = device, dtype
        landmarks, chunk_ids = store.landmarks(device=device if device.type == "cuda" else None)
        missing = [int(c) for c in chunk_ids.tolist() if int(c) not in positions_cache]
        if missing:
            for info in store.chunks(missing):
                positions_cache[info.id] = info.position
        self.landmarks = landmarks
        self.chunk_ids = chunk_ids.long().cpu()
        self.positions = torch.tensor([positions_cache[int(c)] for c in self.chunk_ids.tolist()], dtype=torch.long)

    def __len__(self) -> int:
        return int(self.chunk_ids.shape[0])

    def topk(self, queries: torch.Tensor, k: int, visible_upto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self) == 0:
            T, HK = queries.shape[:2]
            return (torch.full((T, HK, k), float("-inf"), device=queries.device),
                    torch.full((T, HK, k), -1, dtype=torch.long, device=queries.device))
        return topk_over_landmarks(self.landmarks, self.positions, self.chunk_ids, queries, k, visible_upto)

    def kv(self, chunk_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.get_kv(chunk_ids.tolist(), device=self.device, dtype=self.dtype)
