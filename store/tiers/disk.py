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
        if ref.tier != self.name:
            return None
        raw = codecs.get(ref.codec).decode(self.read(ref), self.layout)
        return raw_kv_to_torch(raw, self.layout)

    def read(self, ref: ChunkRef) -> bytes:
        raise NotImplementedError

    def put(self, ref: ChunkRef, kv: KV) -> None:
        raise TypeError(f"the {self.name} tier is written through segment files, not put()")

    def remove(self, ref: ChunkRef) -> None:
        pass
