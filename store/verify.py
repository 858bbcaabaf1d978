"""Integrity: ``verify`` reads every byte the catalog points to; ``repair`` rebuilds what it can.

Problems are strings prefixed with their area (``events``, ``catalog``, ``kv``, ``landmarks``,
``files``); ``repair`` decides from the areas what it may rebuild. The event log is the source
of truth: damage there is reported, never papered over.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select, update

from . import codecs, segments
from . import landmarks as landmark_file
from .catalog import ChunkRow, ForgottenRange, MemoryRow, SegmentRow
from .errors import RepairNeedsRebuild, StoreCorrupted
from .events import IntervalSet
from .fsio import is_temp_name, remove_durably
from .migrations import LATEST, schema_version
from .paths import TIERS
from .records import VerifyReport

log = logging.getLogger(__name__)
M, C, S, F = MemoryRow, ChunkRow, SegmentRow, ForgottenRange

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def orphan_files(store, conn) -> list[Path]:
    """Files in the store directory that no catalog row names (and temp files of dead writers)."""
    root = store.paths.root
    mem = conn.execute(select(M.landmark_file).where(M.id == store._memory_id)).one()
    known = {root / f for f in conn.execute(select(S.file).where(S.memory_id == store._memory_id)).scalars()}
    out = []
    for tier in TIERS:
        folder = store.paths.tier_dir(tier)
        if folder.exists():
            out += [p for p in folder.iterdir() if p not in known]
    for folder in (root, store.paths.events):
        out += [p for p in folder.iterdir() if p.is_file() and is_temp_name(p.name)]
    out += [p for p in root.glob("landmarks-*.f32") if p.name != mem.landmark_file]
    return sorted(out)


def verify(store) -> VerifyReport:
    """Run with the writer lock held, so no write moves bytes under the check."""
    report = VerifyReport()
    mid, root, layout = store._memory_id, store.paths.root, store.layout
    logged = IntervalSet([], [])
    events_seen = store._events.verify(_area(report, "events"), logged)
    last_seq = store._events.next_seq() - 1
    with store._catalog.read() as conn:
        version = schema_version(conn)
        if version != LATEST:
            report.add(f"catalog: schema version {version}, expected {LATEST}")
        mem = conn.execute(select(M).where(M.id == mid)).one()
        segs = {s.id: s for s in conn.execute(select(S).where(S.memory_id == mid))}
        chunks = conn.execute(select(C).where(C.memory_id == mid).order_by(C.position)).all()
        forgotten = IntervalSet.of((r.lo, r.hi) for r in conn.execute(select(F.lo, F.hi).where(F.memory_id == mid)))
        orphans = orphan_files(store, conn)
    for path in orphans:
        report.add(f"files: {path.relative_to(root)} is named by no catalog row")
    if not 0 <= mem.encoded_upto_seq <= last_seq:
        report.add(f"catalog: cursor encoded_upto_seq {mem.encoded_upto_seq} is past the log's last seq {last_seq}")
    if mem.seq_floor > last_seq:
        report.add(f"events: seq floor {mem.seq_floor} is past the log's next seq; seqs could be reused")
    _check_segments(report, root, segs)
    live = [c for c in chunks if not c.deleted]
    _check_chunk_rows(report, mem, chunks, live, segs, forgotten, logged, last_seq)
    _check_kv(report, root, layout, live, segs)
    _check_landmarks(report, root, layout, mem, live)
    report.checked = {"events": events_seen, "chunks": len(live), "forgotten_chunks": len(chunks) - len(live),
                      "segments": len(segs)}
    return report


class _area:
    """Prefixes problems from one checker with its area."""

    def __init__(self, report: VerifyReport, name: str):
        self.report, self.name = report, name

    def add(self, problem: str) -> None:
        self.report.add(f"{self.name}: {problem}")


def _check_segments(report: VerifyReport, root: Path, segs: dict) -> None:
    for seg in segs.values():
        path = root / seg.file
        if not path.exists():
            report.add(f"kv: segment {seg.id} file {seg.file} is missing")
            continue
        try:
            header, start = segments.read_header(path)
        except StoreCorrupted as exc:
            report.add(f"kv: {exc}")
            continue
        if header.get("codec") != seg.codec or header.get("segment_id") != seg.id or header.get("tier") != seg.tier:
            report.add(f"kv: {seg.file} header ({header.get('codec')}, {header.get('tier')}, "
                       f"{header.get('segment_id')}) disagrees with the catalog ({seg.codec}, {seg.tier}, {seg.id})")
        if header.get("codec") not in codecs.names():
            report.add(f"kv: {seg.file} names unknown codec {header.get('codec')!r}")
        if path.stat().st_size < seg.size or seg.size < start:
            report.add(f"kv: {seg.file} is {path.stat().st_size} bytes, the catalog committed {seg.size}")


def _check_chunk_rows(report, mem, chunks, live, segs, forgotten: IntervalSet, logged: IntervalSet,
                      last_seq: int) -> None:
    """``logged``: the seqs of the log's records (forgotten ones not yet compacted included)."""
    ids = [c.id for c in chunks]
    if ids and max(ids) >= mem.next_chunk_id:
        report.add(f"catalog: chunk id {max(ids)} is not below next_chunk_id {mem.next_chunk_id}")
    if ids and min(ids) < 1:
        report.add(f"catalog: chunk id {min(ids)} is below 1, the first id a store hands out")
    if segs and max(segs) >= mem.next_segment_id:
        report.add(f"catalog: segment id {max(segs)} is not below next_segment_id {mem.next_segment_id}")
    previous = None
    for c in live:
        # chunks are stored in position order and get increasing ids as they are stored
        if previous is not None and c.position <= previous.position:
            report.add(f"catalog: chunk {c.id} position {c.position} repeats or goes back")
        elif previous is not None and c.id <= previous.id:
            report.add(f"catalog: chunk {c.id} at position {c.position} has a lower id than chunk {previous.id} "
                       f"before it")
        previous = c
        if not 0 <= c.token_start < c.token_end:
            report.add(f"catalog: chunk {c.id} token span {c.token_start}..{c.token_end} is empty or backwards")
        if c.time_start_us > c.time_end_us:
            report.add(f"catalog: chunk {c.id} time span starts after it ends")
        if not 1 <= c.first_seq <= c.last_seq:
            report.add(f"catalog: chunk {c.id} event span {c.first_seq}..{c.last_seq} is invalid")
            continue
        if c.last_seq > last_seq:
            report.add(f"catalog: chunk {c.id} cites seq {c.last_seq}, past the log's last seq {last_seq}")
        # its first and last events are its own (forgetting either forgets it); the events between them may
        # have been forgotten while their tokens sat in the open chunk, which dropped them before closing
        ends = [s for s in dict.fromkeys((c.first_seq, c.last_seq)) if s in forgotten]
        if ends:
            report.add(f"catalog: chunk {c.id} is live but made from forgotten events {ends}")
        missing = [s for s in dict.fromkeys((c.first_seq, c.last_seq)) if s not in forgotten and s not in logged]
        if missing:
            report.add(f"catalog: chunk {c.id} cites seqs {missing}, which are no records of the event log")
        if c.segment_id not in segs:
            report.add(f"catalog: chunk {c.id} points at missing segment {c.segment_id}")
        elif c.byte_offset + c.length > segs[c.segment_id].size:
            report.add(f"catalog: chunk {c.id} ends past segment {c.segment_id}'s committed size")
    for c in chunks:
        if c.deleted and c.text:
            report.add(f"catalog: forgotten chunk {c.id} still holds text")


def _check_kv(report, root: Path, layout, live, segs) -> None:
    for c in live:
        seg = segs.get(c.segment_id)
        if seg is None or not (root / seg.file).exists():
            continue
        try:
            record = segments.read_record(root / seg.file, c.byte_offset, c.length)
        except StoreCorrupted as exc:
            report.add(f"kv: chunk {c.id}: {exc}")
            continue
        if sha256(record) != c.record_sha256:
            report.add(f"kv: chunk {c.id} record in {seg.file} fails its sha256")
            continue
        try:
            raw = codecs.get(seg.codec).decode(record, layout)
        except Exception as exc:  # a codec's own error type is unknown here; report it as damage
            report.add(f"kv: chunk {c.id} does not decode with {seg.codec}: {exc}")
            continue
        if len(raw) != layout.kv_bytes or sha256(raw) != c.kv_sha256:
            report.add(f"kv: chunk {c.id} decodes to bytes that fail kv_sha256")


def _check_landmarks(report, root: Path, layout, mem, live) -> None:
    path = root / mem.landmark_file
    if not path.exists():
        report.add(f"landmarks: file {mem.landmark_file} is missing")
        return
    try:
        landmark_file.check_header(path, layout.landmark_dim)
    except StoreCorrupted as exc:
        report.add(f"landmarks: {exc}")
        return
    capacity = (path.stat().st_size - landmark_file.HEADER) // layout.landmark_bytes
    if capacity < mem.landmark_rows:
        report.add(f"landmarks: {mem.landmark_file} holds {capacity} rows, the catalog committed {mem.landmark_rows}")
        return
    rows_of = [c.landmark_row for c in live]
    if len(set(rows_of)) != len(rows_of) or any(r is None or not 0 <= r < mem.landmark_rows for r in rows_of):
        report.add("landmarks: live chunks share rows or point past the committed rows")
        return
    rows = landmark_file.read_rows(path, layout.landmark_dim, rows_of)
    for c, row in zip(live, rows):
        if sha256(row.tobytes()) != c.landmark_sha256:
            report.add(f"landmarks: row {c.landmark_row} of chunk {c.id} fails its sha256")
    if rows_of != sorted(rows_of):
        report.add("landmarks: rows are not in position order")


def repair(store, rebuild: Callable | None) -> VerifyReport:
    with store.writer():
        store._sweep()
        report = verify(store)
        if report.ok:
            return report
        areas = {p.split(":", 1)[0] for p in report.problems}
        if "events" in areas:
            raise StoreCorrupted("the event log is damaged and is the source of truth; restore from a snapshot: "
                                 + "; ".join(p for p in report.problems if p.startswith("events"))[:2000])
        if rebuild is None:
            raise RepairNeedsRebuild("derived data is damaged; call repair(rebuild=callback) to re-encode it from "
                                     "the event log: " + "; ".join(report.problems)[:2000])
        log.warning("dropping derived data of %s to rebuild it: %s", store.paths.root, report.problems[:5])
        reset_derived(store)
        rebuild(store)
        return verify(store)


def switch_model(store, model_id: str, weight_hash: str, rebuild: Callable | None) -> VerifyReport:
    with store.writer():
        store._sweep()
        reset_derived(store)
        with store._catalog.write() as conn:
            conn.execute(update(M).where(M.id == store._memory_id).values(model_id=model_id, weight_hash=weight_hash))
        log.warning("%s now belongs to %s (%s…); its derived data was dropped for re-encoding",
                    store.paths.root, model_id, weight_hash[:12])
        store.model_id, store.weight_hash = model_id, weight_hash
        if rebuild is not None:
            rebuild(store)
        return verify(store)


def reset_derived(store) -> None:
    """Drop every chunk, segment and landmark row and zero the cursor; events stay."""
    mid, root = store._memory_id, store.paths.root
    with store._catalog.read() as conn:
        mem = conn.execute(select(M).where(M.id == mid)).one()
        files = [root / f for f in conn.execute(select(S.file).where(S.memory_id == mid)).scalars()]
    generation = mem.generation + 1
    new_name = store.paths.landmark_file(generation)
    landmark_file.create(root / new_name, store.layout.landmark_dim)
    with store._catalog.write() as conn:
        conn.execute(delete(C).where(C.memory_id == mid))
        conn.execute(delete(S).where(S.memory_id == mid))
        conn.execute(update(M).where(M.id == mid).values(
            encoded_upto_seq=0, ingest_state=b"", landmark_file=new_name, landmark_rows=0, generation=generation))
    for path in files:
        store._tiers.warm.drop_file(path)
    remove_durably(*files, root / mem.landmark_file)
    store._tiers.hot.close()
