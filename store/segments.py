"""K/V segment files: many chunk records per file behind a header that names their codec.

Layout: ``HSAKVSG1`` magic, a little-endian u32 header length, the JSON header (codec, its params,
tier, layout, ids) padded to 64 bytes, then the records back to back. Where each record lies is the
catalog's business: bytes past the committed size an append never committed are garbage the
next append overwrites. A file is never renamed or rewritten in place once its records are
committed: tier moves and compaction write a new segment and drop the old one.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .errors import StoreCorrupted
from .fsio import atomic_write, publish, pwrite_all, temp_path

MAGIC = b"HSAKVSG1"
ALIGN = 64


def encode_header(header: dict) -> bytes:
    body = json.dumps(header, sort_keys=True).encode()
    total = len(MAGIC) + 4 + len(body)
    pad = (-total) % ALIGN
    return MAGIC + struct.pack("<I", len(body) + pad) + body + b" " * pad


def read_header(path: str | os.PathLike) -> tuple[dict, int]:
    """The header dict and the offset where records start."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 4)
        if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
            raise StoreCorrupted(f"{path} is not a K/V segment (bad magic)")
        (length,) = struct.unpack("<I", head[len(MAGIC):])
        body = f.read(length)
    if len(body) != length:
        raise StoreCorrupted(f"{path}: header truncated")
    try:
        return json.loads(body), len(MAGIC) + 4 + length
    except ValueError:
        raise StoreCorrupted(f"{path}: header is not JSON") from None


def create(path: Path, header: dict) -> int:
    """A new empty segment on disk (durably); returns the size, i.e. where the first record goes."""
    data = encode_header(header)
    atomic_write(path, data)
    return len(data)


def append(path: Path, at: int, records: list[bytes]) -> list[int]:
    """Write records from byte ``at`` (the committed size) and fsync; returns their offsets.

    Anything past ``at`` is an uncommitted leftover of a crashed writer: it is cut first.
    """
    offsets, pos = [], at
    for record in records:
        offsets.append(pos)
        pos += len(record)
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size > at:
            os.ftruncate(fd, at)
        pwrite_all(fd, b"".join(records), at)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    return offsets


def write_new(path: Path, header: dict, records: list[bytes]) -> list[int]:
    """A whole segment written to a temp file, fsync'd and renamed into place; returns offsets."""
    head = encode_header(header)
    offsets, pos = [], len(head)
    for record in records:
        offsets.append(pos)
        pos += len(record)
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(head)
        for record in records:
            f.write(record)
        f.flush()
        os.fsync(f.fileno())
    publish(tmp, path)
    return offsets


def read_record(path: str | os.PathLike, offset: int, length: int) -> bytes:
    """One record by ``pread``: no shared file position, so any number of threads may read at once."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise StoreCorrupted(f"{path}: record at {offset} wants {length} bytes, file has {len(data)}")
    return data
