"""The library's error hierarchy: catch ``HsaMemoryError`` for anything hsa-memory raises on purpose.

Store errors (``hsa_memory.store.errors``) derive from these classes, so a caller needs one import.
"""
from __future__ import annotations


class HsaMemoryError(Exception):
    """Base class of every deliberate hsa-memory error."""


class InvalidInput(HsaMemoryError, ValueError):
    """An argument was rejected; ``field`` names it. Fix the input and call again: nothing was written."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class MemoryClosed(HsaMemoryError):
    """The memory was closed; open it again with ``Memory(path)``."""


class ModelMismatch(HsaMemoryError):
    """The memory was encoded by other weights; re-encode it (``Memory(path, reencode=True)``) or load its model."""
