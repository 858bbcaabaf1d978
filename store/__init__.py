"""The memory's body on disk: event log, catalog, landmark matrix, tiered K/V segments, snapshots.

It knows nothing of the model beyond array shapes (``KVLayout``). ``MemoryStore`` is the entry
point; ``errors`` holds the typed errors, each saying what the caller should do.
"""
from .errors import StoreError
from .layout import KVLayout
from .policy import TierPolicy
from .records import ChunkInfo, Event, NewChunk, VerifyReport
from .store import MemoryStore

__all__ = ["MemoryStore", "KVLayout", "NewChunk", "ChunkInfo", "Event", "VerifyReport", "TierPolicy", "StoreError"]
