"""The tiers joined: a read walks hot → warm → cold and promotes what it finds into hot."""
from __future__ import annotations

from ..errors import StoreCorrupted
from ..layout import KVLayout
from .base import KV, ChunkRef, Tier
from .cold import ColdTier
from .hot import HotTier
from .warm import WarmTier


class TieredStore:
    def __init__(self, layout: KVLayout, hot_bytes: int, hot_device: str | None = None):
        self.hot = HotTier(hot_bytes, hot_device)
        self.warm = WarmTier(layout)
        self.cold = ColdTier(layout)
        self.tiers: list[Tier] = [self.hot, self.warm, self.cold]

    def get(self, refs: list[ChunkRef]) -> list[KV]:
        found: list[KV | None] = [None] * len(refs)
        for tier in self.tiers:
            missing = [i for i, kv in enumerate(found) if kv is None]
            if not missing:
                break
            for i, kv in zip(missing, tier.get_many([refs[i] for i in missing])):
                if kv is not None:
                    found[i] = kv
                    if tier is not self.hot:
                        self.hot.put(refs[i], kv)
        lost = [refs[i].chunk_id for i, kv in enumerate(found) if kv is None]
        if lost:
            raise StoreCorrupted(f"catalog places chunks {lost} in no readable tier; run verify()")
        return found  # type: ignore[return-value]

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()


__all__ = ["TieredStore", "Tier", "ChunkRef", "KV", "HotTier", "WarmTier", "ColdTier"]
