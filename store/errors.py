"""Typed errors of the store; each docstring says what the caller should do."""
from __future__ import annotations

from hsa_memory import errors as api_errors


class StoreError(api_errors.HsaMemoryError):
    """Base class of every store error; catch it to handle any store failure."""


class StoreNotFound(StoreError, FileNotFoundError):
    """No memory store at the path: check the path, or create one with ``MemoryStore.create``."""


class StoreExists(StoreError, FileExistsError):
    """A store (or other files) already occupy the target: pick an empty path or open the existing store."""


class StoreCorrupted(StoreError):
    """Files or catalog rows fail their checks: run ``verify()`` then ``repair()``, or restore a snapshot."""


class UnknownCodec(StoreCorrupted):
    """A segment names a codec this version cannot decode: upgrade hsa-memory, or repair from the event log."""


class CatalogVersionError(StoreError):
    """The catalog was written by a newer hsa-memory (schema too new): upgrade hsa-memory to open it."""


class StoreLocked(StoreError):
    """Another process holds the writer lock past the timeout: retry later, or find the stuck writer."""


class ChunkNotFound(StoreError, KeyError):
    """Chunk ids that never existed or were forgotten: drop them and refresh ``landmarks()``."""

    def __init__(self, chunk_ids: list[int]):
        self.chunk_ids = list(chunk_ids)
        super().__init__(f"unknown or forgotten chunk ids {self.chunk_ids[:10]}"
                         f"{' …' if len(self.chunk_ids) > 10 else ''}; refresh landmarks() and drop them")

    def __str__(self) -> str:
        return self.args[0]


class InvalidChunks(StoreError, ValueError):
    """Arrays or chunk fields that do not fit the layout or the stream order: fix the caller's input."""


class InvalidEvent(StoreError, ValueError):
    """An event with a naive time, a non-JSON metadata value or a non-string field: fix the input."""


class InvalidForget(StoreError, ValueError):
    """``forget`` was called without any selector: name chunk ids, a time range or a metadata filter."""


class RepairNeedsRebuild(StoreError):
    """Derived data (K/V, landmarks) is damaged: call ``repair(rebuild=...)`` with a re-encoding callback."""


class ModelMismatch(StoreError, api_errors.ModelMismatch):
    """Data was encoded by another model: re-encode (``reencode=True``) or use the matching weights."""

    def __init__(self, expected: tuple[str | None, str | None], found: tuple[str, str]):
        self.expected = expected
        self.found = found
        super().__init__(f"snapshot was encoded by model {found[0]!r} (weights {found[1][:12]}…), "
                         f"expected {expected[0]!r} (weights {(expected[1] or '')[:12]}…); "
                         "pass reencode=True to import its events only and re-encode them")


class SnapshotError(StoreError):
    """The snapshot file is unusable; nothing was written: get a fresh export of the source memory."""


class SnapshotVersionError(SnapshotError):
    """The snapshot's format version is unknown to this hsa-memory: upgrade, or re-export with this version."""


class SnapshotChecksumError(SnapshotError):
    """A snapshot member does not match the sha256 in its manifest: the file is damaged; re-export or re-copy."""


class SnapshotTruncated(SnapshotError):
    """The snapshot ends early (incomplete copy or download): copy the whole file again."""


class UnsafeSnapshotPath(SnapshotError):
    """A member would escape the target (``..``, absolute path, link, device): do not trust this file."""
