"""The writer lock: one writer at a time across threads and processes.

Threads of one process queue on an ``RLock``; processes queue on ``fcntl.flock`` of a lock file
in the store directory. The kernel drops a flock when its holder dies, so a SIGKILLed writer never
leaves the store locked.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreLocked


class WriterLock:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._rlock = threading.RLock()
        self._depth = 0
        self._owner: int | None = None
        self._fd: int | None = None

    def held_by_me(self) -> bool:
        return self._owner == threading.get_ident() and self._depth > 0

    @contextmanager
    def hold(self, timeout: float | None = None, on_acquire: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock; ``on_acquire`` runs once when this process newly takes it (crash recovery)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._rlock.acquire(timeout=-1 if timeout is None else timeout):
            raise StoreLocked(f"another thread holds the writer lock of {self.path.parent} "
                              f"after {timeout}s; retry later")
        try:
            if self._depth == 0:
                self._take_flock(deadline, timeout)
                self._owner = threading.get_ident()
                try:
                    if on_acquire is not None:
                        on_acquire()
                except BaseException:
                    self._release_flock()
                    raise
                self._depth = 1
            else:
                self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_flock()
        finally:
            self._rlock.release()

    def _take_flock(self, deadline: float | None, timeout: float | None) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if deadline is None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            return
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLocked(f"another process holds the writer lock {self.path} after {timeout}s; "
                                      "retry later, or find the stuck writer") from None
                time.sleep(0.005)

    def _release_flock(self) -> None:
        self._owner = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._rlock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
