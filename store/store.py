"""``MemoryStore``: the event log, catalog, landmark matrix and K/V tiers of one memory, joined.

Write path. Every write takes the writer lock (``writer()``), so appends from threads and
processes are serialised. ``append_event`` fsyncs the log before it returns. ``add_chunks`` writes
K/V records past the open segment's committed size and landmark rows past the committed row
count, fsyncs both, and only then commits one catalog transaction that makes the chunk rows, the
new sizes, the ingest state and the cursor visible together. A crash before that commit leaves
bytes no catalog row points to; the next append overwrites them.

Read path. Readers take no lock: they read the catalog in one transaction and touch only bytes
it calls committed, which no writer ever changes in place.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, update

from . import landmarks as landmark_file
from . import segments
from .arrays import to_landmark_rows, to_raw_kv
from .catalog import Catalog, ChunkRow, ForgottenRange, MemoryRow, SegmentRow, sqlite_url
from .errors import (CatalogVersionError, ChunkNotFound, InvalidChunks, InvalidForget, StoreCorrupted, StoreError,
                     StoreExists)
from .events import EventLog, IntervalSet, make_event
from .forget import EventFilter, closure, ranges_of
from .landmarks import LandmarkCache
from .layout import KVLayout
from .locking import WriterLock
from .migrations import LATEST, check_not_newer, migrate, schema_version
from .paths import StorePaths
from .policy import SegmentStat, TierPolicy, should_seal
from .records import ChunkInfo, Event, NewChunk, VerifyReport, from_micros, now_us, to_micros, utc
from .tiers import ChunkRef, TieredStore

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

M, C, S, F = MemoryRow, ChunkRow, SegmentRow, ForgottenRange
# SQLite caps bound parameters; id lists go to the catalog in slices of this size
ID_BATCH = 500

# the read path's queries, built once: building a statement costs more than running it
_mc, _cc, _sc = M.__table__.c, C.__table__.c, S.__table__.c
REFS = (select(_cc.id, _cc.kv_sha256, _cc.tier, _cc.byte_offset, _cc.length, _sc.file, _sc.codec)
        .join(S.__table__, (_sc.memory_id == _cc.memory_id) & (_sc.id == _cc.segment_id))
        .where(_cc.memory_id == bindparam("mid"), _cc.id.in_(bindparam("ids", expanding=True)),
               _cc.deleted.is_(False)))
CATALOG_TOKEN = select(_mc.generation, _mc.next_segment_id).where(_mc.id == bindparam("mid"))
# chunk locations kept per process (about 200 bytes each)
REFS_CACHE = 100_000
LANDMARK_STATE = select(_mc.generation, _mc.landmark_file, _mc.landmark_rows).where(_mc.id == bindparam("mid"))
LANDMARK_ROWS = (select(_cc.id, _cc.landmark_row)
                 .where(_cc.memory_id == bindparam("mid"), _cc.deleted.is_(False),
                        _cc.landmark_row >= bindparam("lo"), _cc.landmark_row < bindparam("hi"))
                 .order_by(_cc.landmark_row))


class MemoryStore:
    """One memory on disk. Create with ``MemoryStore.create``, reopen with ``MemoryStore.open``.

    Thread-safe: reads run concurrently; writes queue on the writer lock. Do not share an instance
    across ``fork()``; open one per process.
    """

    def __init__(self, paths: StorePaths, catalog: Catalog, memory_id: str, policy: TierPolicy):
        self.paths = paths
        self.policy = policy
        self._catalog = catalog
        self._memory_id = memory_id
        with catalog.read() as conn:
            row = conn.execute(select(M).where(M.id == memory_id)).one_or_none()
        if row is None:
            raise StoreCorrupted(f"catalog {catalog.engine.url.render_as_string()} has no row for memory "
                                 f"{memory_id} named in {paths.meta}; restore from a snapshot")
        self.layout = KVLayout.from_json(row.layout)
        self.model_id: str = row.model_id
        self.weight_hash: str = row.weight_hash
        self._events = EventLog(paths.events)
        self._lock = WriterLock(paths.lock)
        self._tiers = TieredStore(self.layout, policy.hot_bytes, policy.hot_device)
        self._landmarks = LandmarkCache(self.layout.landmark_dim)
        self._paths_cache: dict[str, Path] = {}
        self._refs_cache: dict[int, ChunkRef] = {}
        self._refs_token: tuple | None = None
        self._closed = False


    @classmethod
    def create(cls, path: str | Path, layout: KVLayout, model_id: str, weight_hash: str,
               catalog_url: str | None = None, policy: TierPolicy | None = None) -> "MemoryStore":
        """Make a new, empty memory in ``path`` (absent or an empty directory)."""
        paths = StorePaths(Path(path))
        if paths.root.exists() and any(paths.root.iterdir()):
            raise StoreExists(f"{paths.root} is not empty; open it with MemoryStore.open or pick a new path")
        made_root = not paths.root.exists()
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.make_dirs()
        catalog = Catalog(catalog_url or sqlite_url(str(paths.catalog)))
        try:
            migrate(catalog)
            memory_id = str(uuid.uuid4())
            lm_name = paths.landmark_file(1)
            landmark_file.create(paths.root / lm_name, layout.landmark_dim)
            with catalog.write() as conn:
                conn.execute(insert(M).values(
                    id=memory_id, model_id=model_id, weight_hash=weight_hash, layout=layout.to_json(),
                    created_us=now_us(), encoded_upto_seq=0, ingest_state=b"", landmark_file=lm_name,
                    landmark_rows=0, next_chunk_id=1, next_segment_id=1, generation=1, seq_floor=0))
            # the marker goes last: a directory without it was never a store
            paths.write_meta(memory_id, "sqlite" if catalog_url is None else "external")
        except BaseException:
            catalog.close()
            # a half-made store would block the next create; remove what this call made
            if made_root:
                shutil.rmtree(paths.root, ignore_errors=True)
            raise
        return cls(paths, catalog, memory_id, policy or TierPolicy())

    @classmethod
    def open(cls, path: str | Path, catalog_url: str | None = None,
             policy: TierPolicy | None = None) -> "MemoryStore":
        """Open an existing memory; upgrades an older catalog schema, refuses a newer one."""
        paths = StorePaths(Path(path))
        meta = paths.read_meta()
        if meta["catalog"] == "sqlite":
            if catalog_url is not None:
                raise StoreError(f"{paths.root} keeps its catalog in {paths.catalog.name}; open it without catalog_url")
            if not paths.catalog.exists():
                raise StoreCorrupted(f"{paths.catalog} is missing; restore the store from a snapshot")
            catalog_url = sqlite_url(str(paths.catalog))
        elif catalog_url is None:
            raise StoreError(f"{paths.root} keeps its catalog in an external database; pass its catalog_url")
        catalog = Catalog(catalog_url)
        try:
            with catalog.read() as conn:
                version = schema_version(conn)
            check_not_newer(version)
            if version == 0:
                raise StoreCorrupted(f"catalog {catalog.engine.url.render_as_string()} holds no schema; "
                                     "wrong catalog_url, or restore from a snapshot")
            if version < LATEST:
                migrate(catalog)
            store = cls(paths, catalog, meta["memory_id"], policy or TierPolicy())
        except BaseException:
            catalog.close()
            raise
        try:
            # tidy up after a crashed writer now, unless a live writer holds the lock (it already did)
            with store._lock.hold(timeout=0, on_acquire=store._recover):
                store._sweep()
        except StoreError as exc:
            if not isinstance(exc, (CatalogVersionError, StoreCorrupted)):
                log.info("skipping recovery of %s: %s", paths.root, exc)
            else:
                store.close()
                raise
        return store

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._tiers.close()
        self._catalog.close()
        self._lock.close()

    def __enter__(self) -> "MemoryStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


    @contextmanager
    def writer(self, timeout: float | None = None) -> Iterator["MemoryStore"]:
        """Hold the writer lock across several writes (re-entrant in one thread).

        Every write method takes it on its own; hold it yourself to keep another process from
        writing between two of your calls. ``timeout`` seconds, then ``StoreLocked``.
        """
        with self._lock.hold(timeout, on_acquire=self._recover):
            yield self

    def _recover(self) -> None:
        """Runs whenever this process newly takes the writer lock: catch up with other writers."""
        cut = self._events.recover()
        if cut:
            log.warning("cut %d bytes of a torn event record left by a crashed writer in %s", cut, self.paths.events)

    def _sweep(self) -> None:
        """Delete files no catalog row names: leftovers of a writer that died mid-rewrite."""
        from .verify import orphan_files

        with self._catalog.read() as conn:
            orphans = orphan_files(self, conn)
        if orphans:
            log.warning("removing %d orphan files in %s: %s", len(orphans), self.paths.root, orphans[:5])
            from .fsio import remove_durably

            remove_durably(*orphans)


    def append_event(self, text: str, role: str, time: datetime, metadata: dict | None = None) -> int:
        """Append one event; it is on disk (fsync'd) when this returns its sequence number."""
        return self.append_events([(text, role, time, metadata)])[0]

    def append_events(self, items: Sequence[tuple[str, str, datetime, dict | None]]) -> list[int]:
        """Append several events with one fsync; all are durable when this returns."""
        with self.writer():
            seq = self._events.next_seq()
            events = [make_event(seq + i, *item) for i, item in enumerate(items)]
            self._events.append(events)
        return [e.seq for e in events]

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        """Live events with ``seq > after_seq``, in order; forgotten ones never appear."""
        forgotten = self._forgotten()
        return self._events.iterate(after_seq, forgotten)

    def forgotten(self) -> IntervalSet:
        """Sequence numbers of every forgotten event (``seq in store.forgotten()``)."""
        return self._forgotten()

    def _forgotten(self) -> IntervalSet:
        with self._catalog.read() as conn:
            rows = conn.execute(select(F.lo, F.hi).where(F.memory_id == self._memory_id)).all()
        return IntervalSet.of((r.lo, r.hi) for r in rows)

    def generation(self) -> int:
        """A counter that moves whenever chunks leave the memory (forget, compaction): anything derived
        from the memory's content (cached model states) is stale once it changes."""
        with self._catalog.read() as conn:
            return int(conn.execute(CATALOG_TOKEN, {"mid": self._memory_id}).one().generation)

    def ingest_version(self) -> tuple[int, int]:
        """``(encoded_upto_seq, generation)`` without the ingest state's bytes: what a writer compares to
        know whether its in-RAM ingest state is still the committed one (appends move the first, forgets
        — which may scrub the state — the second)."""
        with self._catalog.read() as conn:
            row = conn.execute(select(M.encoded_upto_seq, M.generation).where(M.id == self._memory_id)).one()
        return int(row.encoded_upto_seq), int(row.generation)

    def ingest_cursor(self) -> tuple[int, bytes]:
        """``(encoded_upto_seq, ingest_state)`` as last committed by ``add_chunks``; ``(0, b"")`` when new."""
        with self._catalog.read() as conn:
            row = conn.execute(select(M.encoded_upto_seq, M.ingest_state).where(M.id == self._memory_id)).one()
        return row.encoded_upto_seq, bytes(row.ingest_state or b"")

    def add_chunks(self, chunks: Sequence[NewChunk], landmarks: Any, keys: Any, values: Any,
                   ingest_state: bytes, encoded_upto_seq: int) -> list[int]:
        """Store encoded chunks; all of them, the ingest state and the cursor commit together.

        ``landmarks`` is (n, R), ``keys``/``values`` (n, S, HK, D): torch tensors (any float dtype,
        any device) or numpy arrays, converted to float32 and ``layout.kv_dtype``. With no chunks
        (n = 0, arrays may be None) only the ingest state and cursor are stored.
        """
        n = len(chunks)
        layout = self.layout
        if n:
            rows = to_landmark_rows(landmarks, n, layout.landmark_dim)
            raw = to_raw_kv(keys, values, layout)
            if raw.shape[0] != n:
                raise InvalidChunks(f"{n} chunks but K/V for {raw.shape[0]}")
        if not isinstance(ingest_state, (bytes, bytearray, memoryview)):
            raise InvalidChunks(f"ingest_state must be bytes, got {type(ingest_state).__name__}")
        _check_chunks(chunks)
        with self.writer(), self._catalog.write() as conn:
            mem = conn.execute(select(M).where(M.id == self._memory_id)).one()
            last_seq = self._events.next_seq() - 1
            if not 0 <= encoded_upto_seq <= last_seq:
                raise InvalidChunks(f"encoded_upto_seq {encoded_upto_seq} is outside the log (0..{last_seq})")
            late = [c.position for c in chunks if c.last_seq > last_seq]
            if late:
                raise InvalidChunks(f"chunks at positions {late[:5]} cite events past the last seq {last_seq}")
            previous = conn.execute(select(func.max(C.position)).where(C.memory_id == self._memory_id)).scalar()
            if n and previous is not None and chunks[0].position <= previous:
                raise InvalidChunks(f"chunk position {chunks[0].position} is not after the last stored, {previous}")
            values_mem: dict[str, Any] = {"encoded_upto_seq": encoded_upto_seq, "ingest_state": bytes(ingest_state)}
            ids = list(range(mem.next_chunk_id, mem.next_chunk_id + n))
            if n:
                values_mem.update(self._write_chunks(conn, mem, chunks, ids, rows, raw))
            conn.execute(update(M).where(M.id == self._memory_id).values(**values_mem))
        return ids

    def _write_chunks(self, conn, mem, chunks: Sequence[NewChunk], ids: list[int], rows: np.ndarray,
                      raw: np.ndarray) -> dict[str, Any]:
        """File writes of an add (fsync'd), then its chunk and segment rows; returns memory updates."""
        seg, next_segment_id = self._open_segment(conn, mem, raw.nbytes)
        records = [raw[i].tobytes() for i in range(len(chunks))]
        offsets = segments.append(self.paths.root / seg.file, seg.size, records)
        landmark_file.append(self.paths.root / mem.landmark_file, mem.landmark_rows, rows)
        conn.execute(insert(C), [
            {"memory_id": self._memory_id, "id": cid, "position": c.position, "token_start": c.token_start,
             "token_end": c.token_end, "time_start_us": to_micros(c.time_start), "time_end_us": to_micros(c.time_end),
             "roles": json.dumps(list(c.roles)), "text": c.text, "first_seq": c.first_seq, "last_seq": c.last_seq,
             "segment_id": seg.id, "byte_offset": off, "length": len(rec), "tier": "warm",
             "record_sha256": digest, "kv_sha256": digest, "landmark_row": mem.landmark_rows + i,
             "landmark_sha256": hashlib.sha256(rows[i].tobytes()).hexdigest(), "deleted": False}
            for i, (cid, c, off, rec, digest) in enumerate(
                zip(ids, chunks, offsets, records, (hashlib.sha256(r).hexdigest() for r in records)))])
        conn.execute(update(S).where(S.memory_id == self._memory_id, S.id == seg.id).values(
            size=seg.size + sum(map(len, records)), chunk_count=seg.chunk_count + len(records)))
        return {"landmark_rows": mem.landmark_rows + len(chunks), "next_chunk_id": ids[-1] + 1,
                "next_segment_id": next_segment_id}

    def _open_segment(self, conn, mem, incoming: int):
        """The warm segment appends go to, sealing a full one and starting a new one as needed."""
        seg = conn.execute(select(S).where(S.memory_id == self._memory_id, S.tier == "warm",
                                           S.sealed.is_(False))).one_or_none()
        now = now_us()
        if seg is not None and should_seal(self.policy, SegmentStat.of(seg), incoming, now):
            conn.execute(update(S).where(S.memory_id == self._memory_id, S.id == seg.id).values(sealed=True))
            seg = None
        if seg is not None:
            return seg, mem.next_segment_id
        seg_id = mem.next_segment_id
        seg = self._new_segment_row(conn, seg_id, "warm", "raw", now)
        return seg, seg_id + 1

    def _new_segment_row(self, conn, seg_id: int, tier: str, codec_name: str, created: int):
        file = self.paths.segment_file(tier, seg_id)
        size = segments.create(self.paths.root / file, self.segment_header(tier, seg_id, codec_name))
        conn.execute(insert(S).values(memory_id=self._memory_id, id=seg_id, tier=tier, codec=codec_name, file=file,
                                      size=size, chunk_count=0, sealed=False, created_us=created))
        return conn.execute(select(S).where(S.memory_id == self._memory_id, S.id == seg_id)).one()

    def segment_header(self, tier: str, seg_id: int, codec_name: str) -> dict:
        """What a new segment file's header records: its codec above all."""
        from . import codecs

        return {"codec": codec_name, "params": codecs.get(codec_name).params(), "tier": tier,
                "segment_id": seg_id, "memory_id": self._memory_id, "layout": json.loads(self.layout.to_json())}

    def landmarks(self, device: str | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Live landmarks ``(N, R)`` float32 and their chunk ids ``(N,)`` int64, in position order.

        Resident: a call costs one catalog query plus reading rows committed since the last call.
        The tensors are views; do not write into them. They stay valid after later appends.
        """
        cache = self._landmarks
        with cache.lock:
            for _ in range(5):
                with self._catalog.read() as conn:
                    mem = conn.execute(LANDMARK_STATE, {"mid": self._memory_id}).one()
                    need = cache.needs(mem.generation, mem.landmark_file, mem.landmark_rows)
                    if need is not None:
                        lo = cache.rows_seen if need == "tail" else 0
                        pairs = conn.execute(LANDMARK_ROWS, {"mid": self._memory_id, "lo": lo,
                                                             "hi": mem.landmark_rows}).all()
                if need is None:
                    return cache.tensors(device)
                try:
                    cache.sync(mem.generation, mem.landmark_file, mem.landmark_rows,
                               self.paths.root / mem.landmark_file, pairs, full=need == "full")
                except FileNotFoundError:
                    # a compaction replaced the file after our catalog read; read the catalog again
                    continue
                return cache.tensors(device)
        raise StoreCorrupted(f"landmark file keeps vanishing under {self.paths.root}; run verify()")

    def _refs(self, chunk_ids: list[int], fresh: bool = False) -> list[ChunkRef]:
        """Where the chunks are. Cached per process while neither ``generation`` (forgets) nor
        ``next_segment_id`` (every segment rewrite makes a new one) moves, so a hit costs one
        tiny query instead of a lookup per id."""
        with self._catalog.read() as conn:
            token = tuple(conn.execute(CATALOG_TOKEN, {"mid": self._memory_id}).one())
            if fresh or token != self._refs_token:
                self._refs_cache.clear()
                self._refs_token = token
            cache = self._refs_cache
            found = {cid: ref for cid in chunk_ids if (ref := cache.get(cid)) is not None}
            unknown = [cid for cid in dict.fromkeys(chunk_ids) if cid not in found]
            if len(cache) + len(unknown) > REFS_CACHE:
                cache.clear()
            for i in range(0, len(unknown), ID_BATCH):
                batch = unknown[i: i + ID_BATCH]
                for r in conn.execute(REFS, {"mid": self._memory_id, "ids": batch}):
                    found[r.id] = cache[r.id] = ChunkRef(r.id, r.kv_sha256, r.tier, self._segment_path(r.file),
                                                         r.byte_offset, r.length, r.codec)
        missing = [cid for cid in chunk_ids if cid not in found]
        if missing:
            raise ChunkNotFound(missing)
        return [found[cid] for cid in chunk_ids]

    def _segment_path(self, file: str) -> Path:
        path = self._paths_cache.get(file)
        if path is None:
            if len(self._paths_cache) > 4096:
                self._paths_cache.clear()
            path = self._paths_cache[file] = self.paths.root / file
        return path

    def get_kv(self, chunk_ids: Any, device: str | None = None,
               dtype: "torch.dtype | None" = None) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Keys and values ``(n, S, HK, D)`` of the given chunks, in the order asked.

        Walks hot → warm → cold and caches what it decodes in the hot tier. ``device`` defaults to
        the CPU (wherever the hot tier lives), ``dtype`` to the layout's. Raises ``ChunkNotFound``
        for unknown or forgotten ids.
        """
        import torch

        ids = [int(i) for i in (chunk_ids.tolist() if hasattr(chunk_ids, "tolist") else chunk_ids)]
        for attempt in range(5):
            refs = self._refs(ids, fresh=attempt > 0)
            try:
                kvs = self._tiers.get(refs)
                break
            except FileNotFoundError:
                # the segment moved tier or was compacted after the catalog read; look again
                continue
        else:
            raise StoreCorrupted(f"segments of chunks {ids[:5]} keep vanishing; run verify()")
        if not kvs:
            shape = (0, *self.layout.kv_shape)
            empty = torch.empty(shape, dtype=dtype or _torch_dtype(self.layout), device=device)
            return empty, empty.clone()
        target = torch.device(device) if device is not None else torch.device("cpu")
        keys = torch.stack([k.to(target) for k, _ in kvs])  # (n, S, HK, D)
        values = torch.stack([v.to(target) for _, v in kvs])  # (n, S, HK, D)
        if dtype is not None:
            keys, values = keys.to(dtype), values.to(dtype)
        return keys, values

    def chunks(self, chunk_ids: Any) -> list[ChunkInfo]:
        """Catalog rows of the given chunks (forgotten ones until compaction, with empty text)."""
        ids = [int(i) for i in (chunk_ids.tolist() if hasattr(chunk_ids, "tolist") else chunk_ids)]
        rows = {}
        with self._catalog.read() as conn:
            for i in range(0, len(ids), ID_BATCH):
                q = select(C).where(C.memory_id == self._memory_id, C.id.in_(ids[i: i + ID_BATCH]))
                rows.update({r.id: r for r in conn.execute(q)})
        missing = [cid for cid in ids if cid not in rows]
        if missing:
            raise ChunkNotFound(missing)
        return [_chunk_info(rows[cid]) for cid in ids]


    def forget(self, chunk_ids: Any = None, before: datetime | None = None, after: datetime | None = None,
               where: dict | None = None) -> int:
        """Forget chunks by id and/or events by time (``after <= time < before``) and metadata.

        Chunk ids and the event filter add up (union); the time bounds and ``where`` items narrow
        the filter (intersection). Forgetting is closed under "made from" (see ``forget.py``): the
        events of a forgotten chunk and the chunks of a forgotten event go too. Tombstoned at once
        (no read returns them); ``compact()`` removes the bytes. Returns chunks plus events newly
        forgotten.
        """
        ids = set() if chunk_ids is None else {int(i) for i in (
            chunk_ids.tolist() if hasattr(chunk_ids, "tolist") else chunk_ids)}
        flt = EventFilter(before, after, where)
        if not ids and flt.empty:
            raise InvalidForget("forget() needs chunk_ids, before/after or where; nothing was forgotten")
        with self.writer(), self._catalog.write() as conn:
            mid = self._memory_id
            # ids below next_chunk_id were handed out: forgetting one again (even after compaction) is a no-op
            next_id = conn.execute(select(M.next_chunk_id).where(M.id == mid)).scalar()
            unknown = sorted(i for i in ids if not 1 <= i < next_id)
            if unknown:
                raise ChunkNotFound(unknown)
            old = IntervalSet.of((r.lo, r.hi) for r in conn.execute(select(F.lo, F.hi).where(F.memory_id == mid)))
            hits = [] if flt.empty else [e.seq for e in self._events.iterate(0, old) if flt.matches(e)]
            spans = [(r.id, r.first_seq, r.last_seq) for r in conn.execute(
                select(C.id, C.first_seq, C.last_seq).where(C.memory_id == mid, C.deleted.is_(False)))]
            chosen, reached = closure(ranges_of(hits), spans, ids)
            merged = IntervalSet.of(old.ranges() + reached.ranges())
            new_events = self._events.count(reached, old)
            for batch in _batches(sorted(chosen)):
                conn.execute(update(C).where(C.memory_id == mid, C.id.in_(batch)).values(deleted=True, text=""))
            conn.execute(delete(F).where(F.memory_id == mid))
            if merged:
                conn.execute(insert(F), [{"memory_id": mid, "lo": lo, "hi": hi} for lo, hi in merged.ranges()])
            if chosen or new_events:
                conn.execute(update(M).where(M.id == mid).values(generation=M.generation + 1))
        self._tiers.hot.remove_ids(chosen)
        return len(chosen) + new_events

    def retier(self) -> dict:
        """Move segments between tiers as the policy says; returns what moved."""
        from .compaction import retier

        return retier(self)

    def compact(self) -> dict:
        """Physically remove everything forgotten: segments, landmark rows, log records, catalog rows.

        Returns counts and ``catalog_wal_cleared``: False when another connection's long read kept
        SQLite from emptying its WAL, which may then hold forgotten rows until the next compact().
        On PostgreSQL the tables are VACUUMed; its WAL and backups are the database's business.
        """
        from .compaction import compact

        return compact(self)


    def verify(self) -> VerifyReport:
        """Check every checksum and cross-reference; ``ok`` is False and ``problems`` says what is wrong."""
        from .verify import verify

        with self.writer():
            return verify(self)

    def repair(self, rebuild: Callable[["MemoryStore"], None] | None = None, model_id: str | None = None,
               weight_hash: str | None = None) -> VerifyReport:
        """Fix what ``verify`` found. Leftover files are removed; damaged derived data (K/V,
        landmarks, chunk rows) is dropped and ``rebuild(store)`` is called to re-encode it from
        ``events()`` with the cursor at ``(0, b"")``. Without ``rebuild`` that raises
        ``RepairNeedsRebuild``. A damaged event log cannot be repaired: restore a snapshot.

        With ``model_id``/``weight_hash`` the memory moves to new weights: all derived data is
        dropped and the new identity recorded; ``rebuild`` then re-encodes at once, or, when None,
        the cursor stays at ``(0, b"")`` for the caller to re-encode from ``events()``."""
        from .verify import repair, switch_model

        if model_id is not None or weight_hash is not None:
            return switch_model(self, model_id or self.model_id, weight_hash or self.weight_hash, rebuild)
        return repair(self, rebuild)

    def export(self, path: str | Path) -> dict:
        """Write a ``.hsamem`` snapshot of the live data; returns its manifest."""
        from .snapshot import export

        return export(self, Path(path))

    @classmethod
    def import_snapshot(cls, snapshot_path: str | Path, target_path: str | Path,
                        expected_model_id: str | None = None, expected_weight_hash: str | None = None,
                        reencode: bool = False, catalog_url: str | None = None,
                        policy: TierPolicy | None = None) -> "MemoryStore":
        """Check a snapshot completely, then build a new store from it at ``target_path``.

        ``ModelMismatch`` when the expected model differs, unless ``reencode``: then only the events
        are imported (derived data empty, cursor ``(0, b"")``) for the caller to re-encode.
        """
        from .snapshot import import_snapshot

        return import_snapshot(cls, Path(snapshot_path), Path(target_path), expected_model_id,
                               expected_weight_hash, reencode, catalog_url, policy)

    def stats(self) -> dict:
        """Counts and sizes per tier, for dashboards and the benchmark."""
        with self._catalog.read() as conn:
            mem = conn.execute(select(M).where(M.id == self._memory_id)).one()
            live = conn.execute(select(func.count()).select_from(C).where(
                C.memory_id == self._memory_id, C.deleted.is_(False))).scalar()
            dead = conn.execute(select(func.count()).select_from(C).where(
                C.memory_id == self._memory_id, C.deleted.is_(True))).scalar()
            tiers = {t: {"segments": n, "bytes": int(b or 0), "chunks": int(k or 0)} for t, n, b, k in conn.execute(
                select(S.tier, func.count(), func.sum(S.size), func.sum(S.chunk_count))
                .where(S.memory_id == self._memory_id).group_by(S.tier))}
        hot = self._tiers.hot
        return {"memory_id": self._memory_id, "model_id": self.model_id, "layout": json.loads(self.layout.to_json()),
                "last_seq": self._events.peek_last_seq(),
                "chunks": live, "forgotten_chunks": dead, "encoded_upto_seq": mem.encoded_upto_seq,
                "landmark_rows": mem.landmark_rows, "tiers": tiers,
                "hot": {"bytes": hot.bytes, "entries": hot.entries, "hits": hot.hits, "misses": hot.misses},
                "disk_bytes": _disk_bytes(self.paths.root), "catalog": self._catalog.engine.dialect.name}


def _batches(items: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(items), ID_BATCH):
        yield items[i: i + ID_BATCH]


def _torch_dtype(layout: KVLayout) -> "torch.dtype":
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[layout.kv_dtype]


def _chunk_info(r) -> ChunkInfo:
    return ChunkInfo(id=r.id, position=r.position, token_start=r.token_start, token_end=r.token_end,
                     time_start=from_micros(r.time_start_us), time_end=from_micros(r.time_end_us),
                     roles=json.loads(r.roles), text=r.text, first_seq=r.first_seq, last_seq=r.last_seq,
                     segment=r.segment_id, tier=r.tier, deleted=bool(r.deleted))


def _check_chunks(chunks: Sequence[NewChunk]) -> None:
    previous = None
    for c in chunks:
        if not isinstance(c, NewChunk):
            raise InvalidChunks(f"chunks must be NewChunk, got {type(c).__name__}")
        if previous is not None and c.position <= previous:
            raise InvalidChunks(f"chunk positions must increase: {c.position} after {previous}")
        if not 0 <= c.token_start < c.token_end:
            raise InvalidChunks(f"chunk {c.position}: token span {c.token_start}..{c.token_end} is empty or negative")
        if not 1 <= c.first_seq <= c.last_seq:
            raise InvalidChunks(f"chunk {c.position}: event span {c.first_seq}..{c.last_seq} is invalid")
        if utc(c.time_start, "time_start") > utc(c.time_end, "time_end"):
            raise InvalidChunks(f"chunk {c.position}: time_start is after time_end")
        if not isinstance(c.text, str) or not all(isinstance(r, str) for r in c.roles):
            raise InvalidChunks(f"chunk {c.position}: text and roles must be strings")
        previous = c.position


def _disk_bytes(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in root.rglob("*"):
        try:
            if not p.is_file():
                continue
            size = p.stat().st_size
        except FileNotFoundError:
            # a writer in another process (retier, compaction) replaced or removed it after the listing
            continue
        key = p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else p.name
        if key == "kv":
            key = "kv/" + p.relative_to(root).parts[1]
        out[key] = out.get(key, 0) + size
    return out
