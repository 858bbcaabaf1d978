"""Durable file writes: temp file → fsync → rename → fsync the directory.

A rename is atomic, but neither the data nor the new directory entry survives a power cut
until it is fsync'd; every file the store replaces goes through here.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: str | os.PathLike) -> Path:
    """A sibling name for a file being written; ``.tmp-`` names are swept on recovery."""
    final = Path(final)
    return final.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{final.name}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".tmp-")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    path = Path(path)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    publish(tmp, path)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename an already fsync'd temp file into place and make the rename durable."""
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def remove_durably(*paths: str | os.PathLike) -> None:
    """Unlink files (missing ones are fine) and fsync each parent once."""
    parents = set()
    for p in paths:
        p = Path(p)
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        parents.add(p.parent)
    for parent in parents:
        fsync_dir(parent)
