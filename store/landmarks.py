"""The landmark matrix: one float32 row per chunk, on disk and resident for scoring.

On disk: a 64-byte header (magic, row width) then rows. The file grows by doubling its capacity, so
appending is amortised O(1); the catalog's ``landmark_rows`` says how many rows are committed.
Compaction writes a new file with the live rows only and the catalog switches to it in one commit.

In memory: ``LandmarkCache`` keeps the live rows (in position order) in a buffer that also grows
by doubling, appends what other writers committed since the last look, and mirrors the buffer on
any device it is asked for, copying only the new rows there.
"""
from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import StoreCorrupted
from .fsio import atomic_write, publish, pwrite_all, temp_path

if TYPE_CHECKING:
    import torch

MAGIC = b"HSALMK01"
HEADER = 64


def _header(dim: int) -> bytes:
    return (MAGIC + struct.pack("<I", dim)).ljust(HEADER, b"\0")


def create(path: Path, dim: int) -> None:
    atomic_write(path, _header(dim))


def check_header(path: Path, dim: int) -> None:
    with open(path, "rb") as f:
        head = f.read(HEADER)
    if len(head) < HEADER or head[: len(MAGIC)] != MAGIC:
        raise StoreCorrupted(f"{path} is not a landmark file (bad magic)")
    (found,) = struct.unpack("<I", head[len(MAGIC): len(MAGIC) + 4])
    if found != dim:
        raise StoreCorrupted(f"{path} holds rows of {found} floats, the layout says {dim}")


def append(path: Path, at_row: int, rows: np.ndarray) -> None:
    """Write rows from row ``at_row`` (the committed count) and fsync, growing capacity by doubling."""
    row_bytes = rows.shape[1] * 4
    start = HEADER + at_row * row_bytes
    need = start + rows.nbytes
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size < need:
            capacity_rows = max((size - HEADER) // row_bytes, 1)
            while HEADER + capacity_rows * row_bytes < need:
                capacity_rows *= 2
            os.ftruncate(fd, HEADER + capacity_rows * row_bytes)
        pwrite_all(fd, np.ascontiguousarray(rows, dtype=np.float32).data, start)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def read_rows(path: Path, dim: int, rows: np.ndarray | range) -> np.ndarray:
    """Copies of the given rows as ``(n, dim)`` float32."""
    n_file = (os.path.getsize(path) - HEADER) // (dim * 4)
    if len(rows) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.memmap(path, dtype=np.float32, mode="r", offset=HEADER, shape=(n_file, dim))
    try:
        if isinstance(rows, range) and rows.step == 1:
            return np.array(matrix[rows.start: rows.stop])
        return np.array(matrix[np.asarray(rows, dtype=np.int64)])
    finally:
        del matrix


def write_new(path: Path, rows: np.ndarray) -> None:
    """A compacted landmark file holding exactly ``rows``, made durable before it is named."""
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(_header(rows.shape[1]))
        f.write(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
        f.flush()
        os.fsync(f.fileno())
    publish(tmp, path)


class LandmarkCache:
    """Live landmark rows and their chunk ids, resident in RAM and on devices on demand."""

    def __init__(self, dim: int):
        self.dim = dim
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._file: str | None = None
        self._rows_seen = 0
        self._n = 0
        self._buf = np.zeros((0, dim), dtype=np.float32)
        self._ids = np.zeros((0,), dtype=np.int64)
        # device → (rows tensor, ids tensor, rows valid there)
        self._devices: dict[str, tuple[Any, Any, int]] = {}

    def sync(self, generation: int, file: str, committed: int, path: Path,
             new_rows: list[tuple[int, int]], full: bool) -> None:
        """Fold in what the catalog says: ``new_rows`` are (chunk id, landmark row) past ``rows_seen``,
        or, when ``full``, every live row (the generation or file changed)."""
        rows = read_rows(path, self.dim, np.fromiter((r for _, r in new_rows), dtype=np.int64, count=len(new_rows)))
        ids = np.fromiter((c for c, _ in new_rows), dtype=np.int64, count=len(new_rows))
        if full:
            # fresh buffers: views handed out before must keep showing what they showed
            self._n = 0
            self._buf = np.zeros((max(len(rows), 64), self.dim), dtype=np.float32)
            self._ids = np.zeros((len(self._buf),), dtype=np.int64)
            self._devices.clear()
        self._append(rows, ids)
        self._generation, self._file, self._rows_seen = generation, file, committed

    def _append(self, rows: np.ndarray, ids: np.ndarray) -> None:
        need = self._n + len(rows)
        if need > len(self._buf):
            capacity = max(need, 2 * len(self._buf), 64)
            buf = np.zeros((capacity, self.dim), dtype=np.float32)
            buf[: self._n] = self._buf[: self._n]
            id_buf = np.zeros((capacity,), dtype=np.int64)
            id_buf[: self._n] = self._ids[: self._n]
            # readers hold views of the old buffers; rows below their n never change, so those stay valid
            self._buf, self._ids = buf, id_buf
        self._buf[self._n: need] = rows
        self._ids[self._n: need] = ids
        self._n = need

    def needs(self, generation: int, file: str, committed: int) -> str | None:
        """``"full"``, ``"tail"`` or None: what ``sync`` must be given to catch up."""
        if generation != self._generation or file != self._file:
            return "full"
        if committed != self._rows_seen:
            return "tail"
        return None

    @property
    def rows_seen(self) -> int:
        return self._rows_seen

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def tensors(self, device: str | None) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Views ``(N, R)`` float32 and ``(N,)`` int64; rows below N never change, so they stay valid."""
        import torch

        rows = torch.from_numpy(self._buf[: self._n])
        ids = torch.from_numpy(self._ids[: self._n])
        if device is None or torch.device(device).type == "cpu":
            return rows, ids
        key = str(torch.device(device))
        dev_rows, dev_ids, valid = self._devices.get(key, (None, None, 0))
        if dev_rows is None or dev_rows.shape[0] < self._n:
            capacity = max(self._n, 2 * (0 if dev_rows is None else dev_rows.shape[0]), 64)
            grown = torch.empty((capacity, self.dim), dtype=torch.float32, device=device)
            grown_ids = torch.empty((capacity,), dtype=torch.int64, device=device)
            if valid:
                grown[:valid] = dev_rows[:valid]
                grown_ids[:valid] = dev_ids[:valid]
            dev_rows, dev_ids = grown, grown_ids
        if valid < self._n:
            dev_rows[valid: self._n] = rows[valid:].to(device, non_blocking=False)
            dev_ids[valid: self._n] = ids[valid:].to(device)
        self._devices[key] = (dev_rows, dev_ids, self._n)
        return dev_rows[: self._n], dev_ids[: self._n]
