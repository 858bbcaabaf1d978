"""Versioned catalog schema: ordered migration functions and the ``schema_version`` table.

Each migration is frozen once released: it spells out its own tables instead of importing the
current models, so upgrading an old catalog replays exactly what that version did. A migration
runs in one transaction together with its ``schema_version`` row, under a database-wide lock
(an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent openers upgrade once.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import (BigInteger, Boolean, Column, Connection, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text, inspect, text)

from .catalog import Catalog
from .errors import CatalogVersionError, StoreCorrupted

log = logging.getLogger(__name__)

# arbitrary constant naming this schema's advisory lock on PostgreSQL
_PG_LOCK_KEY = 0x45A_3E30


def _v1(conn: Connection) -> None:
    """Memories, segments, chunks, forgotten event ranges."""
    md = MetaData()
    Table("schema_version", md,
          Column("version", Integer, primary_key=True, autoincrement=False),
          Column("applied_us", BigInteger))
    Table("memories", md,
          Column("id", String(36), primary_key=True),
          Column("model_id", String(200)), Column("weight_hash", String(128)), Column("layout", Text),
          Column("created_us", BigInteger), Column("encoded_upto_seq", BigInteger),
          Column("ingest_state", LargeBinary), Column("landmark_file", String(200)),
          Column("landmark_rows", BigInteger), Column("next_chunk_id", BigInteger),
          Column("next_segment_id", BigInteger), Column("generation", BigInteger))
    Table("segments", md,
          Column("memory_id", String(36), primary_key=True),
          Column("id", BigInteger, primary_key=True, autoincrement=False),
          Column("tier", String(16)), Column("codec", String(32)), Column("file", String(200)),
          Column("size", BigInteger), Column("chunk_count", Integer), Column("sealed", Boolean),
          Column("created_us", BigInteger))
    chunks = Table("chunks", md,
                   Column("memory_id", String(36), primary_key=True),
                   Column("id", BigInteger, primary_key=True, autoincrement=False),
                   *(Column(name, BigInteger) for name in ("position", "token_start", "token_end",
                                                            "time_start_us", "time_end_us")),
                   Column("roles", Text), Column("text", Text),
                   Column("first_seq", BigInteger), Column("last_seq", BigInteger),
                   Column("segment_id", BigInteger), Column("byte_offset", BigInteger),
                   Column("length", BigInteger), Column("tier", String(16)),
                   Column("record_sha256", String(64)), Column("kv_sha256", String(64)),
                   Column("landmark_row", BigInteger), Column("landmark_sha256", String(64)),
                   Column("deleted", Boolean))
    Index("ix_chunks_position", chunks.c.memory_id, chunks.c.position)
    Index("ix_chunks_segment", chunks.c.memory_id, chunks.c.segment_id)
    Index("ix_chunks_landmark_row", chunks.c.memory_id, chunks.c.landmark_row)
    Table("forgotten_events", md,
          Column("memory_id", String(36), primary_key=True),
          Column("lo", BigInteger, primary_key=True, autoincrement=False),
          Column("hi", BigInteger))
    md.create_all(conn)


def _v2(conn: Connection) -> None:
    """Snapshot records; ``memories.seq_floor`` so compaction never lets a seq be reused."""
    conn.execute(text("ALTER TABLE memories ADD COLUMN seq_floor BIGINT NOT NULL DEFAULT 0"))
    md = MetaData()
    snapshots = Table("snapshots", md,
                      Column("id", Integer, primary_key=True, autoincrement=True),
                      Column("memory_id", String(36)),
                      Column("kind", String(16)), Column("path", Text), Column("sha256", String(64)),
                      Column("format_version", Integer), Column("created_us", BigInteger))
    Index("ix_snapshots_memory_id", snapshots.c.memory_id)
    md.create_all(conn)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _v1), (2, _v2)]
LATEST = MIGRATIONS[-1][0]


def schema_version(conn: Connection) -> int:
    """The catalog's schema version; 0 for an empty database."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0


def migrate(catalog: Catalog, target: int = LATEST) -> int:
    """Apply every migration up to ``target``; returns the version reached."""
    if target > LATEST:
        raise ValueError(f"target schema {target} is past the latest known, {LATEST}")
    reached = 0
    for version, step in MIGRATIONS:
        if version > target:
            break
        with catalog.write() as conn:
            if not catalog.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            current = schema_version(conn)
            check_not_newer(current)
            if current >= version:
                reached = current
                continue
            if current != version - 1:
                raise StoreCorrupted(f"catalog schema is at {current} but migration {version} follows "
                                     f"{version - 1}; the schema_version table is damaged")
            log.info("migrating catalog %s to schema %d", catalog.engine.url.render_as_string(), version)
            step(conn)
            conn.execute(text("INSERT INTO schema_version (version, applied_us) VALUES (:v, :t)"),
                         {"v": version, "t": int(time.time() * 1e6)})
            reached = version
    return reached


def check_not_newer(version: int) -> None:
    if version > LATEST:
        raise CatalogVersionError(f"catalog schema {version} is newer than this hsa-memory understands "
                                  f"({LATEST}); upgrade hsa-memory")
