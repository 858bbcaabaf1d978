"""Segment rewrites: moving segments between tiers, and compaction that removes forgotten bytes.

Both follow one pattern: write the new file completely (temp → fsync → rename → fsync dir), switch
the catalog to it in one transaction, then delete the old file. A crash before the switch leaves
an orphan new file, after it an orphan old file; the next writer's sweep deletes either.
"""
from __future__ import annotations

import hashlib
import logging

from sqlalchemy import bindparam, delete, select, update

from . import codecs, segments
from . import landmarks as landmark_file
from .catalog import ChunkRow, MemoryRow, SegmentRow
from .errors import StoreCorrupted
from .fsio import remove_durably
from .policy import SegmentStat, segments_to_cool, should_seal
from .records import now_us

log = logging.getLogger(__name__)
M, C, S = MemoryRow, ChunkRow, SegmentRow


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _segment_rows(store) -> list:
    with store._catalog.read() as conn:
        return conn.execute(select(S).where(S.memory_id == store._memory_id).order_by(S.id)).all()


def rewrite_segment(store, seg, tier: str, codec_name: str) -> int:
    """Copy ``seg``'s live chunks into a new segment of ``tier``/``codec_name``; returns chunks dropped."""
    mid, root, layout = store._memory_id, store.paths.root, store.layout
    with store._catalog.read() as conn:
        rows = conn.execute(select(C.id, C.byte_offset, C.length, C.record_sha256, C.kv_sha256, C.deleted)
                            .where(C.memory_id == mid, C.segment_id == seg.id).order_by(C.byte_offset)).all()
        new_id = conn.execute(select(M.next_segment_id).where(M.id == mid)).scalar()
    live = [r for r in rows if not r.deleted]
    dead = [r.id for r in rows if r.deleted]
    src, dst = codecs.get(seg.codec), codecs.get(codec_name)
    old_path = root / seg.file
    records, kv_digests = [], []
    for r in live:
        record = segments.read_record(old_path, r.byte_offset, r.length)
        if sha256(record) != r.record_sha256:
            raise StoreCorrupted(f"{seg.file}: chunk {r.id} fails its checksum; run verify() and repair()")
        if src.name == dst.name:
            records.append(record)
            kv_digests.append(r.kv_sha256)
            continue
        new = dst.encode(src.decode(record, layout), layout)
        records.append(new)
        kv_digests.append(r.kv_sha256 if dst.lossless else sha256(dst.decode(new, layout)))
    new_file = store.paths.segment_file(tier, new_id)
    if live:
        offsets = segments.write_new(root / new_file, store.segment_header(tier, new_id, codec_name), records)
    with store._catalog.write() as conn:
        if live:
            conn.execute(S.__table__.insert().values(
                memory_id=mid, id=new_id, tier=tier, codec=codec_name, file=new_file,
                size=offsets[-1] + len(records[-1]), chunk_count=len(live), sealed=seg.sealed or tier != "warm",
                created_us=seg.created_us))
            conn.execute(update(M).where(M.id == mid).values(next_segment_id=new_id + 1))
            conn.execute(
                update(C).where(C.memory_id == mid, C.id == bindparam("b_id"))
                .values(segment_id=new_id, tier=tier, byte_offset=bindparam("b_off"), length=bindparam("b_len"),
                        record_sha256=bindparam("b_rec"), kv_sha256=bindparam("b_kv")),
                [{"b_id": r.id, "b_off": off, "b_len": len(rec), "b_rec": sha256(rec), "b_kv": kv}
                 for r, off, rec, kv in zip(live, offsets, records, kv_digests)])
        if dead:
            conn.execute(update(C).where(C.memory_id == mid, C.id.in_(dead))
                         .values(segment_id=None, tier="none", byte_offset=0, length=0))
        conn.execute(delete(S).where(S.memory_id == mid, S.id == seg.id))
    store._tiers.warm.drop_file(old_path)
    remove_durably(old_path)
    return len(dead)


def retier(store) -> dict:
    with store.writer():
        store._sweep()
        now = now_us()
        for seg in _segment_rows(store):
            if seg.tier == "warm" and not seg.sealed and should_seal(store.policy, SegmentStat.of(seg), 0, now):
                with store._catalog.write() as conn:
                    conn.execute(update(S).where(S.memory_id == store._memory_id, S.id == seg.id).values(sealed=True))
        rows = {seg.id: seg for seg in _segment_rows(store)}
        cooled = segments_to_cool(store.policy, [SegmentStat.of(s) for s in rows.values()], now)
        for seg_id in cooled:
            rewrite_segment(store, rows[seg_id], "cold", store.policy.cold_codec)
        if cooled:
            log.info("moved %d warm segments to cold (%s)", len(cooled), store.policy.cold_codec)
        return {"cooled_segments": cooled}


def compact(store) -> dict:
    mid = store._memory_id
    with store.writer():
        store._sweep()
        # 1. segments holding forgotten chunks are rewritten without them
        with store._catalog.read() as conn:
            dirty = set(conn.execute(select(C.segment_id).where(
                C.memory_id == mid, C.deleted.is_(True), C.segment_id.is_not(None)).distinct()).scalars())
        rewritten = [seg for seg in _segment_rows(store) if seg.id in dirty]
        for seg in rewritten:
            rewrite_segment(store, seg, seg.tier, seg.codec)
        # 2. the landmark matrix is rewritten with live rows only, in position order
        landmark_rows_removed = _compact_landmarks(store)
        # 3. the tombstoned catalog rows go; the seq floor keeps their seqs from being reused
        with store._catalog.write() as conn:
            removed_rows = conn.execute(delete(C).where(C.memory_id == mid, C.deleted.is_(True))).rowcount
            floor = conn.execute(select(M.seq_floor).where(M.id == mid)).scalar()
            conn.execute(update(M).where(M.id == mid).values(seq_floor=max(floor, store._events.next_seq() - 1)))
        # 4. log records of forgotten events
        events_removed = store._events.rewrite_without(store._forgotten())
        # 5. free pages and the WAL still hold deleted rows until the database is rewritten
        wal_cleared = store._catalog.vacuum(["chunks", "memories", "segments", "forgotten_events"])
        if not wal_cleared:
            log.warning("another connection kept reading %s during compaction: its WAL may still hold "
                        "forgotten rows until the next compact()", store.paths.root)
    return {"segments_rewritten": len(rewritten), "landmark_rows_removed": landmark_rows_removed,
            "chunk_rows_removed": removed_rows, "events_removed": events_removed, "catalog_wal_cleared": wal_cleared}


def _compact_landmarks(store) -> int:
    mid, root = store._memory_id, store.paths.root
    with store._catalog.read() as conn:
        mem = conn.execute(select(M).where(M.id == mid)).one()
        live = conn.execute(select(C.id, C.landmark_row).where(C.memory_id == mid, C.deleted.is_(False))
                            .order_by(C.position)).all()
    old_path = root / mem.landmark_file
    file_rows = (old_path.stat().st_size - landmark_file.HEADER) // store.layout.landmark_bytes
    if len(live) == mem.landmark_rows == file_rows and all(r.landmark_row == i for i, r in enumerate(live)):
        return 0
    rows = landmark_file.read_rows(old_path, store.layout.landmark_dim, [r.landmark_row for r in live])
    generation = mem.generation + 1
    new_name = store.paths.landmark_file(generation)
    landmark_file.write_new(root / new_name, rows)
    with store._catalog.write() as conn:
        if live:
            conn.execute(update(C).where(C.memory_id == mid, C.id == bindparam("b_id"))
                         .values(landmark_row=bindparam("b_row")),
                         [{"b_id": r.id, "b_row": i} for i, r in enumerate(live)])
        conn.execute(update(C).where(C.memory_id == mid, C.deleted.is_(True)).values(landmark_row=None))
        conn.execute(update(M).where(M.id == mid).values(
            landmark_file=new_name, landmark_rows=len(live), generation=generation))
    remove_durably(old_path)
    return mem.landmark_rows - len(live)
