"""What warm and cold share: reading a record, decoding it with the codec its segment names."""
from __future__ import annotations

from ..arrays import raw_kv_to_torch
from ..layout import KVLayout
from .. import codecs
from .base import KV, ChunkRef, Tier


class DiskTier(Tier):
    """A tier whose records live in segment files; the catalog decides what goes where.

    Records are written by segment appends and rewrites that the catalog commits, so ``put`` only
    exists for the hot tier; ``remove`` here drops what this process keeps open for a segment.
    """

    def __init__(self, layout: KVLayout):
        self.layout = layout

    def contains(self, ref: ChunkRef) -> bool:
        return ref.tier == self.name

    def get(self, ref: ChunkRef) -> KV | None:
        return self.get_many([ref])[0]

    def get_many(self, refs: list[ChunkRef]) -> list[KV | None]:
        # one tensor for the whole batch: per-chunk tensor set-up costs more than the copy
        mine = [i for i, ref in enumerate(refs) if ref.tier == self.name]
        raws = [codecs.get(refs[i].codec).decode(self.read(refs[i]), self.layout) for i in mine]
        out: list[KV | None] = [None] * len(refs)
        for i, kv in zip(mine, raw_kv_to_torch(raws, self.layout) if raws else []):
            out[i] = kv
        return out

    def read(self, ref: ChunkRef) -> bytes:
        raise NotImplementedError

    def put(self, ref: ChunkRef, kv: KV) -> None:
        raise TypeError(f"the {self.name} tier is written through segment files, not put()")

    def remove(self, ref: ChunkRef) -> None:
        pass
