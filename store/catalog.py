"""The catalog, index of record: which chunks exist, where their bytes are, what was forgotten.

SQLAlchemy 2 models of the current schema (``migrations.py`` builds and upgrades it) and the
engine setup: an SQLite file in WAL mode with ``synchronous=FULL`` by default, so a commit is on
disk when it returns; any other URL (PostgreSQL for the service) works the same way. Every table
is keyed by ``memory_id`` so one database can hold many memories.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (BigInteger, Boolean, Connection, Index, Integer, LargeBinary, String, Text, create_engine,
                        event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    applied_us: Mapped[int] = mapped_column(BigInteger)


class MemoryRow(Base):
    __tablename__ = "memories"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200))
    weight_hash: Mapped[str] = mapped_column(String(128))
    layout: Mapped[str] = mapped_column(Text)
    created_us: Mapped[int] = mapped_column(BigInteger)
    encoded_upto_seq: Mapped[int] = mapped_column(BigInteger)
    ingest_state: Mapped[bytes] = mapped_column(LargeBinary)
    landmark_file: Mapped[str] = mapped_column(String(200))
    landmark_rows: Mapped[int] = mapped_column(BigInteger)
    next_chunk_id: Mapped[int] = mapped_column(BigInteger)
    next_segment_id: Mapped[int] = mapped_column(BigInteger)
    # bumped whenever ids leave the live set or rows move, so readers rebuild their caches
    generation: Mapped[int] = mapped_column(BigInteger)
    # highest seq ever handed out, kept so compaction never lets a forgotten seq be reused (v2)
    seq_floor: Mapped[int] = mapped_column(BigInteger, default=0)


class SegmentRow(Base):
    __tablename__ = "segments"
    memory_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tier: Mapped[str] = mapped_column(String(16))
    codec: Mapped[str] = mapped_column(String(32))
    file: Mapped[str] = mapped_column(String(200))
    # committed length: bytes past it are an append that never committed
    size: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bool] = mapped_column(Boolean)
    created_us: Mapped[int] = mapped_column(BigInteger)


class ChunkRow(Base):
    __tablename__ = "chunks"
    memory_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(BigInteger)
    token_start: Mapped[int] = mapped_column(BigInteger)
    token_end: Mapped[int] = mapped_column(BigInteger)
    time_start_us: Mapped[int] = mapped_column(BigInteger)
    time_end_us: Mapped[int] = mapped_column(BigInteger)
    roles: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    segment_id: Mapped[int] = mapped_column(BigInteger)
    byte_offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(BigInteger)
    tier: Mapped[str] = mapped_column(String(16))
    record_sha256: Mapped[str] = mapped_column(String(64))
    # sha256 of the raw K/V the store serves (changes only when a lossy codec re-encodes it)
    kv_sha256: Mapped[str] = mapped_column(String(64))
    landmark_row: Mapped[int] = mapped_column(BigInteger)
    landmark_sha256: Mapped[str] = mapped_column(String(64))
    deleted: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_chunks_position", "memory_id", "position"),
        Index("ix_chunks_segment", "memory_id", "segment_id"),
        Index("ix_chunks_landmark_row", "memory_id", "landmark_row"),
    )


class ForgottenRange(Base):
    """Sequence ranges whose events are forgotten; no content, so they outlive compaction."""

    __tablename__ = "forgotten_events"
    memory_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lo: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hi: Mapped[int] = mapped_column(BigInteger)


class SnapshotRow(Base):
    """One export or import of this memory (v2)."""

    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    memory_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    format_version: Mapped[int] = mapped_column(Integer)
    created_us: Mapped[int] = mapped_column(BigInteger)


def _sqlite_setup(engine: Engine) -> None:
    # pysqlite's own transaction handling skips BEGIN before DDL and reads; take it over
    # (the recipe in SQLAlchemy's SQLite dialect docs) so every transaction is a real one
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "secure_delete=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")


def sqlite_url(path: str) -> str:
    """An SQLite URL for a file path; URL.create escapes '%', '?' and '#' that a plain f-string would not."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


class Catalog:
    """The engine plus read and write transactions."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_setup(self.engine)
        else:
            # one snapshot per read transaction: a reader must never mix rows from two commits
            self.engine = create_engine(url, pool_pre_ping=True, isolation_level="REPEATABLE READ")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(immediate=True)
            with conn.begin():
                yield conn

    def vacuum(self, tables: list[str], wait_s: float = 2.0) -> bool:
        """Rewrite storage so deleted rows leave no bytes behind (SQLite: the file and its WAL).

        Returns False when SQLite could not empty its WAL because another connection kept a read
        transaction open past ``wait_s``: old pages stay there until a later checkpoint.
        """
        self.engine.dispose()
        # VACUUM refuses to run in a transaction: use a raw autocommit connection, then drop it
        # so its altered transaction mode never goes back to the pool
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            if not self.is_sqlite:
                driver.autocommit = True
                with driver.cursor() as cur:
                    for table in tables:
                        cur.execute(f"VACUUM {table}")
                return True
            driver.execute("VACUUM")
            driver.execute("PRAGMA busy_timeout=100")
            deadline = time.monotonic() + wait_s
            while True:
                busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if not busy or time.monotonic() > deadline:
                    return not busy
                time.sleep(0.05)
        finally:
            raw.invalidate()

    def close(self) -> None:
        self.engine.dispose()
