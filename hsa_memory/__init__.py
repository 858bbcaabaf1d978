"""hsa-memory: lifelong memory for AI agents on a Hierarchical Sparse Attention language model.

``from hsa_memory import Memory`` is the entry point. Names load lazily, so importing the package
(for the CLI's ``--help``, say) does not import torch.
"""
from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "Memory": "hsa_memory.memory",
    "Answer": "hsa_memory.types", "Citation": "hsa_memory.types", "Hit": "hsa_memory.types",
    "HsaMemoryError": "hsa_memory.errors", "InvalidInput": "hsa_memory.errors", "MemoryClosed": "hsa_memory.errors",
    "ModelMismatch": "hsa_memory.errors",
    "StoreError": "hsa_memory.store.errors", "StoreCorrupted": "hsa_memory.store.errors",
    "SnapshotError": "hsa_memory.store.errors", "ChunkNotFound": "hsa_memory.store.errors",
    "StoreLocked": "hsa_memory.store.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hsa_memory' has no attribute {name!r}")
