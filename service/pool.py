"""Open memories of this process: one ``Memory`` per memory id, leased by requests, run in worker threads.

Model and store work never runs on the event loop: ``MemoryPool.run`` hands it to a thread pool.
A memory opens on first use and stays open (the least recently used idle ones close past
``max_open_memories``); deleting a memory waits for its running requests, then closes it.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch

from hsa_memory import Memory
from hsa_memory.memory import resolve_device, shared_model

from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# seconds a delete waits for the requests still using the memory
DRAIN_SECONDS = 60.0


def load_model(settings: Settings):
    """The process's shared model for ``settings.model``; random-init presets get the same weights in every process."""
    device = resolve_device(settings.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return shared_model(settings.model, device, dtype)


class _Entry:
    def __init__(self, memory_id: str):
        self.memory_id = memory_id
        self.memory: Memory | None = None
        self.leases = 0
        self.open_lock = threading.Lock()


class MemoryPool:
    def __init__(self, settings: Settings, loaded):
        self.settings = settings
        self.loaded = loaded
        self._executor: ThreadPoolExecutor | None = None
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        settings.memories_dir.mkdir(parents=True, exist_ok=True)

    def path(self, memory_id: str) -> Path:
        return self.settings.memories_dir / memory_id

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The worker threads, started on first use (again after ``close``, when the app restarts)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.worker_threads, thread_name_prefix="hsa-memory")
            return self._executor

    @property
    def open_count(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.memory is not None)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work in a worker thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args))

    async def call(self, memory_id: str, fn: Callable[[Memory], T]) -> T:
        """``fn(memory)`` in a worker thread, with the memory leased for the call."""
        return await self.run(self.call_blocking, memory_id, fn)

    def call_blocking(self, memory_id: str, fn: Callable[[Memory], T]) -> T:
        """``fn(memory)`` in this thread, with the memory leased for the call."""
        with self.lease(memory_id) as memory:
            return fn(memory)

    @contextmanager
    def lease(self, memory_id: str) -> Iterator[Memory]:
        """The open memory (opened now if needed) for the duration of the block; blocking."""
        with self._lock:
            entry = self._entries.get(memory_id)
            if entry is None:
                entry = self._entries[memory_id] = _Entry(memory_id)
            entry.leases += 1
            self._entries.move_to_end(memory_id)
        try:
            with entry.open_lock:
                opened = entry.memory is None
                if opened:
                    entry.memory = Memory(self.path(memory_id), model=self.loaded,
                                          catalog_url=self.settings.catalog_url, create=False)
            if opened:
                self._evict(keep=memory_id)
            yield entry.memory
        finally:
            self._drop_lease(entry)
            self._evict()

    def _drop_lease(self, entry: _Entry) -> None:
        with self._lock:
            entry.leases -= 1
            if entry.leases == 0 and entry.memory is None and self._entries.get(entry.memory_id) is entry:
                del self._entries[entry.memory_id]
            self._released.notify_all()

    def _evict(self, keep: str | None = None) -> None:
        while True:
            with self._lock:
                opened = [e for e in self._entries.values() if e.memory is not None]
                victim = next((e for e in opened if e.leases == 0 and e.memory_id != keep), None)
                if len(opened) <= self.settings.max_open_memories or victim is None:
                    return
                # held while it closes, so nobody else picks it; a new lease waits on open_lock, then reopens
                victim.leases += 1
            try:
                with victim.open_lock:
                    if victim.memory is not None:
                        victim.memory.close()
                        victim.memory = None
            finally:
                self._drop_lease(victim)

    def create(self, memory_id: str) -> None:
        """Make a new, empty memory and keep it open."""
        memory = Memory(self.path(memory_id), model=self.loaded, catalog_url=self.settings.catalog_url, create=True)
        self._adopt(memory_id, memory)

    def import_snapshot(self, memory_id: str, snapshot: Path, reencode: bool) -> None:
        """Build a memory from a snapshot (checked completely before anything is written) and keep it open."""
        # Memory.import_snapshot hands catalog_url to the store, so the imported rows land in the shared
        # catalog; and when the imported state does not open as a memory it removes the half-made one
        memory = Memory.import_snapshot(snapshot, self.path(memory_id), reencode=reencode, model=self.loaded,
                                        catalog_url=self.settings.catalog_url)
        self._adopt(memory_id, memory)

    def _adopt(self, memory_id: str, memory: Memory) -> None:
        with self._lock:
            entry = self._entries.setdefault(memory_id, _Entry(memory_id))
            entry.memory = memory
            self._entries.move_to_end(memory_id)
        self._evict(keep=memory_id)

    def destroy(self, memory_id: str) -> None:
        """Close the memory once its running requests finish, then delete its files and catalog rows."""
        with self._lock:
            entry = self._entries.pop(memory_id, None)
            if entry is not None and not self._released.wait_for(lambda: entry.leases == 0, DRAIN_SECONDS):
                log.warning("deleting memory %s while %d requests still use it", memory_id, entry.leases)
        memory = entry.memory if entry is not None else None
        path = self.path(memory_id)
        if memory is None and path.exists():
            try:
                memory = Memory(path, model=self.loaded, catalog_url=self.settings.catalog_url, create=False)
            except Exception:
                log.warning("memory %s does not open; removing its files only", memory_id, exc_info=True)
        if memory is not None:
            store_memory_id = memory.stats()["memory_id"]
            memory.close()
            if self.settings.catalog_url is not None:
                # no public API drops a memory's rows from a shared catalog yet; the snapshot
                # importer's clean-up helper does exactly that
                from hsa_memory.store.snapshot import _drop_memory_rows

                _drop_memory_rows(self.settings.catalog_url, store_memory_id)
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Stop the workers once their work is done, then close every memory (flushing its ingest state)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        for entry in entries:
            with entry.open_lock:
                if entry.memory is not None:
                    try:
                        entry.memory.close()
                    except Exception:
                        log.exception("closing memory %s failed", entry.memory_id)
                    entry.memory = None
