"""One interface for every tier: hot (decoded, in RAM or on a device), warm (mmap), cold (compressed)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# one chunk's (keys, values), each (S, HK, D) in the layout dtype
KV = tuple["torch.Tensor", "torch.Tensor"]


@dataclass(frozen=True)
class ChunkRef:
    """Where the catalog says a chunk's bytes are, and which version of them (``kv_sha256``)."""

    chunk_id: int
    kv_sha256: str
    tier: str
    file: Path
    offset: int
    length: int
    codec: str


class Tier(ABC):
    name: str

    @abstractmethod
    def contains(self, ref: ChunkRef) -> bool: ...

    @abstractmethod
    def get(self, ref: ChunkRef) -> KV | None:
        """The chunk's K/V, or None when this tier does not hold it."""

    @abstractmethod
    def put(self, ref: ChunkRef, kv: KV) -> None: ...

    @abstractmethod
    def remove(self, ref: ChunkRef) -> None: ...

    def close(self) -> None:
        pass

    def get_many(self, refs: list[ChunkRef]) -> list[KV | None]:
        return [self.get(ref) for ref in refs]
