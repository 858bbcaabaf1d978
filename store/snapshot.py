"""Snapshots: one ``.hsamem`` file (a tar stream compressed with zstd) holding a memory's live data.

Members, in this order: ``manifest.json`` (format version, model id, weight hash, layout, counts,
cursor, and the size and sha256 of every other member), ``events.jsonl`` (live events, log
format), ``ingest_state.bin``, ``chunks.jsonl`` (live chunk rows in position order),
``landmarks.f32`` (their rows) and ``kv.bin`` (their raw K/V in the layout dtype).

Import reads the file twice. The first pass writes nothing: it checks every member's name and
type, the manifest, every sha256 and size, every event checksum and every chunk's K/V and landmark
checksum. The second pass builds the store in a hidden sibling directory, re-hashing as it goes in
case the file changed, and renames it onto the target only when all of it is on disk.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np
import zstandard
from sqlalchemy import delete, insert, select, update

from . import codecs, segments
from . import landmarks as landmark_file
from .catalog import Catalog, ChunkRow, ForgottenRange, MemoryRow, SegmentRow, SnapshotRow
from .errors import (ModelMismatch, SnapshotChecksumError, SnapshotError, SnapshotTruncated, SnapshotVersionError,
                     StoreExists, UnsafeSnapshotPath)
from .events import IntervalSet, content_problem, decode_line, encode_event
from .fsio import fsync_dir, publish, temp_path
from .layout import KVLayout
from .records import NewChunk, from_micros, now_us

log = logging.getLogger(__name__)
M, C, S = MemoryRow, ChunkRow, SegmentRow

FORMAT = "hsamem"
FORMAT_VERSION = 1
MEMBERS = ("events.jsonl", "ingest_state.bin", "chunks.jsonl", "landmarks.f32", "kv.bin")
MANIFEST = "manifest.json"
BLOCK = 1 << 20
# chunks per catalog transaction while importing
IMPORT_BATCH = 2048



def export(store, path: Path) -> dict:
    """Stage the members, hash them, then write the tar with the manifest first; atomic on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        with store.writer():
            manifest = _stage(store, staging)
        tmp = temp_path(path)
        try:
            with open(tmp, "wb") as raw:
                writer = zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(raw, closefd=False)
                with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
                    tar.addfile(_info(MANIFEST, len(body)), io.BytesIO(body))
                    for name in MEMBERS:
                        with open(staging / name, "rb") as f:
                            tar.addfile(_info(name, manifest["members"][name]["size"]), f)
                writer.close()
                raw.flush()
                os.fsync(raw.fileno())
            publish(tmp, path)
        except BaseException:
            # a full disk or a directory in the way: no snapshot-sized temp file stays behind
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with store.writer():
        _record(store._catalog, store._memory_id, "export", path, _file_sha256(path))
    return manifest


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
    return info


def _stage(store, staging: Path) -> dict:
    mid, root, layout = store._memory_id, store.paths.root, store.layout
    with store._catalog.read() as conn:
        mem = conn.execute(select(M).where(M.id == mid)).one()
        segs = {s.id: s for s in conn.execute(select(S).where(S.memory_id == mid))}
        chunks = conn.execute(select(C).where(C.memory_id == mid, C.deleted.is_(False)).order_by(C.position)).all()
    n_events = 0
    with open(staging / "events.jsonl", "wb") as f:
        for event in store.events():
            f.write(encode_event(event))
            n_events += 1
    (staging / "ingest_state.bin").write_bytes(bytes(mem.ingest_state or b""))
    with open(staging / "chunks.jsonl", "wb") as f:
        for c in chunks:
            f.write((json.dumps(_chunk_record(c), sort_keys=True, ensure_ascii=False) + "\n").encode())
    rows = landmark_file.read_rows(root / mem.landmark_file, layout.landmark_dim, [c.landmark_row for c in chunks])
    (staging / "landmarks.f32").write_bytes(rows.tobytes())
    with open(staging / "kv.bin", "wb") as f:
        for c in chunks:
            seg = segs[c.segment_id]
            record = segments.read_record(root / seg.file, c.byte_offset, c.length)
            raw = codecs.get(seg.codec).decode(record, layout)
            if hashlib.sha256(raw).hexdigest() != c.kv_sha256:
                raise SnapshotError(f"chunk {c.id} fails its checksum in the source store; run verify() first")
            f.write(raw)
    members = {name: {"size": (staging / name).stat().st_size, "sha256": _file_sha256(staging / name)}
               for name in MEMBERS}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": store.model_id,
            "weight_hash": store.weight_hash, "layout": json.loads(layout.to_json()),
            "counts": {"events": n_events, "chunks": len(chunks)}, "next_seq": store._events.next_seq(),
            "next_chunk_id": mem.next_chunk_id, "encoded_upto_seq": mem.encoded_upto_seq,
            "created": datetime.now(timezone.utc).isoformat(), "members": members}


def _chunk_record(c) -> dict:
    return {"id": c.id, "position": c.position, "token_start": c.token_start, "token_end": c.token_end,
            "time_start_us": c.time_start_us, "time_end_us": c.time_end_us, "roles": json.loads(c.roles),
            "text": c.text, "first_seq": c.first_seq, "last_seq": c.last_seq, "kv_sha256": c.kv_sha256,
            "landmark_sha256": c.landmark_sha256}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _record(catalog: Catalog, memory_id: str, kind: str, path: Path, digest: str) -> None:
    with catalog.write() as conn:
        conn.execute(insert(SnapshotRow).values(memory_id=memory_id, kind=kind, path=str(path), sha256=digest,
                                                format_version=FORMAT_VERSION, created_us=now_us()))



class _ZstdReader(io.RawIOBase):
    """A zstd stream that raises ``SnapshotTruncated`` when the file ends inside the frame."""

    def __init__(self, f):
        self._f = f
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            block = self._f.read(BLOCK)
            if not block:
                if not self._d.eof:
                    raise SnapshotTruncated("the snapshot ends inside its zstd stream; copy the whole file again")
                self._eof = True
                break
            try:
                self._buf += self._d.decompress(block)
            except zstandard.ZstdError as exc:
                if "Unknown frame descriptor" in str(exc):
                    raise SnapshotError("not an .hsamem file (no zstd stream)") from None
                raise SnapshotChecksumError(f"the snapshot's compressed stream is damaged: {exc}") from None
            if self._d.eof:
                if self._d.unused_data or self._f.read(1):
                    raise SnapshotError("the snapshot has bytes after its end")
                self._eof = True
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or ".." in parts or not parts:
        raise UnsafeSnapshotPath(f"snapshot member {name!r} escapes the target; do not trust this file")
    if not member.isreg():
        kind = ("symlink" if member.issym() else "hardlink" if member.islnk() else
                "device" if member.isdev() else "directory" if member.isdir() else "special file")
        raise UnsafeSnapshotPath(f"snapshot member {name!r} is a {kind}; only regular files are allowed")
    if name not in (MANIFEST, *MEMBERS):
        raise SnapshotError(f"snapshot member {name!r} is not part of the .hsamem format")


def _members(path: Path) -> Iterator[tuple[tarfile.TarInfo, object]]:
    """(member, file object) pairs, each checked for a safe name and type before it is read."""
    with open(path, "rb") as f:
        stream = _ZstdReader(f)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    _check_member(member)
                    yield member, tar.extractfile(member)
            # tar stops at its end marker; the zstd frame (and its checksum) must be complete too
            while stream.read(BLOCK):
                pass
        except (tarfile.TarError, EOFError) as exc:
            raise SnapshotTruncated(f"the snapshot's tar stream is cut short or damaged ({exc})") from None


def _read_all(fobj, size: int, name: str) -> bytes:
    try:
        data = fobj.read()
    except (tarfile.TarError, EOFError) as exc:
        raise SnapshotTruncated(f"snapshot member {name} is cut short ({exc})") from None
    if len(data) != size:
        raise SnapshotTruncated(f"snapshot member {name} holds {len(data)} bytes, its header says {size}")
    return data


def _blocks(fobj, size: int, name: str, block: int = BLOCK) -> Iterator[bytes]:
    left = size
    while left:
        try:
            data = fobj.read(min(block, left))
        except (tarfile.TarError, EOFError) as exc:
            raise SnapshotTruncated(f"snapshot member {name} is cut short ({exc})") from None
        if not data:
            raise SnapshotTruncated(f"snapshot member {name} ends {left} bytes early")
        left -= len(data)
        yield data


def _parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
        fmt, version = manifest["format"], manifest["format_version"]
    except (ValueError, KeyError, TypeError):
        raise SnapshotError("manifest.json is not a valid .hsamem manifest") from None
    if fmt != FORMAT:
        raise SnapshotError(f"manifest format is {fmt!r}, not {FORMAT!r}")
    if version != FORMAT_VERSION:
        raise SnapshotVersionError(f"snapshot format version {version!r} is unknown to this hsa-memory "
                                   f"(reads {FORMAT_VERSION}); upgrade hsa-memory or re-export")
    try:
        KVLayout(**manifest["layout"])
        for name in MEMBERS:
            entry = manifest["members"][name]
            _count(f"members.{name}.size", entry["size"])
            _text(f"members.{name}.sha256", entry["sha256"])
        for field in ("next_seq", "next_chunk_id", "encoded_upto_seq"):
            _count(field, manifest[field])
        for field in ("events", "chunks"):
            _count(f"counts.{field}", manifest["counts"][field])
        if manifest["encoded_upto_seq"] >= manifest["next_seq"]:
            raise ValueError(f"encoded_upto_seq {manifest['encoded_upto_seq']} is not below next_seq "
                             f"{manifest['next_seq']}")
        _text("model_id", manifest["model_id"])
        _text("weight_hash", manifest["weight_hash"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"manifest.json lacks or garbles a field ({exc})") from None
    return manifest


# the catalog's integers are signed 64-bit
MAX_INT = 2**63 - 1


def _count(field: str, value) -> int:
    """A JSON integer in [0, 2**63); strings, floats and booleans are refused, not coerced."""
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise ValueError(f"{field} must be an integer in [0, 2**63), got {value!r:.40}")
    return value


def _text(field: str, value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    return value


def _signed(field: str, value) -> int:
    if type(value) is not int or not -MAX_INT <= value <= MAX_INT:
        raise ValueError(f"{field} must be a 64-bit integer, got {value!r:.40}")
    from_micros(value)  # raises OverflowError past datetime's range
    return value


def _roles(field: str, value) -> list:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ValueError(f"{field} must be a list of strings")
    return value


# each chunk record's fields and their checks
CHUNK_FIELDS = {"id": _count, "position": _count, "token_start": _count, "token_end": _count,
                "time_start_us": _signed, "time_end_us": _signed, "roles": _roles, "text": _text,
                "first_seq": _count, "last_seq": _count, "kv_sha256": _text, "landmark_sha256": _text}


def _check_chunk(record) -> None:
    if not isinstance(record, dict):
        raise ValueError(f"a chunk record must be an object, got {type(record).__name__}")
    for field, check_field in CHUNK_FIELDS.items():
        if field not in record:
            raise ValueError(f"a chunk record lacks {field!r}")
        check_field(field, record[field])
    # what MemoryStore.add_chunks refuses to store
    if not record["token_start"] < record["token_end"]:
        raise ValueError(f"chunk {record['id']}: token span {record['token_start']}..{record['token_end']} "
                         "is empty or backwards")
    if not 1 <= record["first_seq"] <= record["last_seq"]:
        raise ValueError(f"chunk {record['id']}: event span {record['first_seq']}..{record['last_seq']} is invalid")
    if record["time_start_us"] > record["time_end_us"]:
        raise ValueError(f"chunk {record['id']}: time_start_us is after time_end_us")
    if record["id"] < 1:
        raise ValueError(f"chunk id {record['id']} is below 1, the first id a store hands out")


def _check_chunk_order(chunks: list[dict], event_seqs: IntervalSet) -> None:
    """Chunk records against each other and the events, as a store holds them.

    In position order chunk ids increase (a store hands them out in the order it adds chunks, and adds
    them in position order). A live chunk's first and last events are live too (forgetting either
    forgets the chunk), so both are in events.jsonl; the events between them may have been forgotten
    before the chunk closed, their tokens scrubbed from it.
    """
    previous = None
    for c in chunks:
        if previous is not None and (c["position"] <= previous["position"] or c["id"] <= previous["id"]):
            raise SnapshotError(f"chunks.jsonl: chunk {c['id']} at position {c['position']} does not follow "
                                f"chunk {previous['id']} at position {previous['position']}")
        for field in ("first_seq", "last_seq"):
            if c[field] not in event_seqs:
                raise SnapshotError(f"chunks.jsonl: chunk {c['id']} has {field} {c[field]}, "
                                    "which is no event of the snapshot")
        previous = c


class _Checker:
    """Checks members against the manifest and their contents against their own checksums."""

    def __init__(self, manifest: dict):
        self.manifest = manifest
        self.layout = KVLayout(**manifest["layout"])
        self.seen: set[str] = set()
        self.chunks: list[dict] = []
        # the seqs of the snapshot's events, as runs of consecutive seqs
        self.event_seqs = IntervalSet([], [])

    def member(self, member: tarfile.TarInfo, fobj) -> None:
        name = member.name
        if name == MANIFEST or name in self.seen:
            raise SnapshotError(f"snapshot member {name} appears twice")
        expected = self.manifest["members"][name]
        if member.size != expected["size"]:
            raise SnapshotChecksumError(f"{name} is {member.size} bytes, the manifest says {expected['size']}")
        digest = hashlib.sha256()
        consume = getattr(self, "_" + name.replace(".", "_"))
        consume(_hashing(_blocks(fobj, member.size, name), digest))
        if digest.hexdigest() != expected["sha256"]:
            raise SnapshotChecksumError(f"{name} fails its sha256 in the manifest; the file is damaged")
        self.seen.add(name)

    def finish(self) -> None:
        missing = [n for n in MEMBERS if n not in self.seen]
        if missing:
            raise SnapshotTruncated(f"the snapshot lacks {missing}; it was cut short")
        _check_chunk_order(self.chunks, self.event_seqs)

    def _events_jsonl(self, blocks) -> None:
        count, previous = 0, 0
        for line in _lines(blocks):
            event = decode_line(line)
            if event is None or event.seq <= previous:
                raise SnapshotChecksumError(f"events.jsonl record {count + 1} fails its checksum or order")
            # a valid checksum over content no append accepts: a hand-made snapshot
            problem = content_problem(event.text, event.role)
            if problem is not None:
                raise SnapshotError(f"events.jsonl record {count + 1} (seq {event.seq}): {problem}")
            seqs = self.event_seqs
            if seqs.his and seqs.his[-1] + 1 == event.seq:
                seqs.his[-1] = event.seq
            else:
                seqs.los.append(event.seq)
                seqs.his.append(event.seq)
            previous = event.seq
            count += 1
        if count != self.manifest["counts"]["events"] or previous >= self.manifest["next_seq"]:
            raise SnapshotChecksumError(f"events.jsonl holds {count} events, the manifest disagrees")

    def _ingest_state_bin(self, blocks) -> None:
        for _ in blocks:
            pass

    def _chunks_jsonl(self, blocks) -> None:
        try:
            self.chunks = [json.loads(line) for line in _lines(blocks)]
            for record in self.chunks:
                _check_chunk(record)
            positions = [c["position"] for c in self.chunks]
            ids = [c["id"] for c in self.chunks]
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise SnapshotChecksumError(f"chunks.jsonl is not valid chunk records ({exc})") from None
        if len(self.chunks) != self.manifest["counts"]["chunks"] or positions != sorted(set(positions)) \
                or len(set(ids)) != len(ids) or (ids and max(ids) >= self.manifest["next_chunk_id"]):
            raise SnapshotChecksumError("chunks.jsonl disagrees with the manifest or repeats positions/ids")

    def _landmarks_f32(self, blocks) -> None:
        for i, row in enumerate(_records(blocks, self.layout.landmark_bytes, len(self.chunks), "landmarks.f32")):
            if hashlib.sha256(row).hexdigest() != self.chunks[i]["landmark_sha256"]:
                raise SnapshotChecksumError(f"landmark row {i} fails its checksum")

    def _kv_bin(self, blocks) -> None:
        for i, raw in enumerate(_records(blocks, self.layout.kv_bytes, len(self.chunks), "kv.bin")):
            if hashlib.sha256(raw).hexdigest() != self.chunks[i]["kv_sha256"]:
                raise SnapshotChecksumError(f"K/V of chunk {self.chunks[i]['id']} fails its checksum")


def _hashing(blocks: Iterator[bytes], digest) -> Iterator[bytes]:
    for block in blocks:
        digest.update(block)
        yield block


def _lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for block in blocks:
        pending += block
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


def _records(blocks: Iterator[bytes], size: int, count: int, name: str) -> Iterator[bytes]:
    pending, seen = b"", 0
    for block in blocks:
        pending += block
        whole = len(pending) // size * size
        for i in range(0, whole, size):
            yield pending[i: i + size]
            seen += 1
        pending = pending[whole:]
    if pending or seen != count:
        raise SnapshotChecksumError(f"{name} holds {seen} records (+{len(pending)} bytes), expected {count}")


def check(path: Path, expected_model_id: str | None, expected_weight_hash: str | None, reencode: bool) -> dict:
    """Pass one: every check, no writes. Returns the manifest."""
    if not path.is_file():
        raise SnapshotError(f"{path} is not a file")
    checker = None
    for member, fobj in _members(path):
        if checker is None:
            if member.name != MANIFEST:
                raise SnapshotError(f"the first member is {member.name!r}, not {MANIFEST}")
            manifest = _parse_manifest(_read_all(fobj, member.size, MANIFEST))
            found = (manifest["model_id"], manifest["weight_hash"])
            mismatch = (expected_model_id is not None and expected_model_id != found[0]) or \
                       (expected_weight_hash is not None and expected_weight_hash != found[1])
            if mismatch and not reencode:
                raise ModelMismatch((expected_model_id, expected_weight_hash), found)
            checker = _Checker(manifest)
            continue
        checker.member(member, fobj)
    if checker is None:
        raise SnapshotTruncated("the snapshot holds no members")
    checker.finish()
    return checker.manifest



def import_snapshot(store_cls, path: Path, target: Path, expected_model_id: str | None,
                    expected_weight_hash: str | None, reencode: bool, catalog_url: str | None, policy):
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StoreExists(f"{target} exists and is not empty; import into a new path")
    manifest = check(path, expected_model_id, expected_weight_hash, reencode)
    found = (manifest["model_id"], manifest["weight_hash"])
    events_only = reencode and ((expected_model_id or found[0]), (expected_weight_hash or found[1])) != found
    model_id = (expected_model_id or found[0]) if events_only else found[0]
    weight_hash = (expected_weight_hash or found[1]) if events_only else found[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.parent / f".{target.name}.import-{uuid.uuid4().hex[:8]}"
    store = store_cls.create(building, KVLayout(**manifest["layout"]), model_id, weight_hash, catalog_url, policy)
    memory_id = store._memory_id
    try:
        _build(store, path, manifest, events_only)
        store.close()
        _fsync_tree(building)
        if target.exists():
            target.rmdir()
        os.rename(building, target)
        fsync_dir(target.parent)
    except BaseException:
        store.close()
        shutil.rmtree(building, ignore_errors=True)
        if catalog_url is not None:
            _drop_memory_rows(catalog_url, memory_id)
        raise
    opened = store_cls.open(target, catalog_url, policy)
    _record(opened._catalog, memory_id, "import", path, _file_sha256(path))
    if events_only:
        log.warning("imported only the events of %s: it was encoded by %s; re-encode them", path, found[0])
    return opened


def _build(store, path: Path, manifest: dict, events_only: bool) -> None:
    """Pass two: stream the members into the new store, hashing them again on the way."""
    state, chunks, rows = b"", [], None
    for member, fobj in _members(path):
        name = member.name
        if name == MANIFEST:
            continue
        digest = hashlib.sha256()
        blocks = _hashing(_blocks(fobj, member.size, name), digest)
        if name == "events.jsonl":
            batch = []
            for line in _lines(blocks):
                batch.append(decode_line(line))
                if len(batch) >= 10_000:
                    store._events.append(batch)
                    batch = []
            store._events.append(batch)
        elif name == "ingest_state.bin":
            state = b"".join(blocks)
        elif name == "chunks.jsonl":
            chunks = [json.loads(line) for line in _lines(blocks)]
        elif name == "landmarks.f32":
            rows = np.frombuffer(b"".join(blocks), dtype=np.float32).reshape(len(chunks), store.layout.landmark_dim)
        elif name == "kv.bin":
            _build_chunks(store, blocks, chunks, rows, events_only)
        for _ in blocks:
            pass
        if digest.hexdigest() != manifest["members"][name]["sha256"]:
            raise SnapshotChecksumError(f"{name} changed between the check and the import; import again")
    with store.writer():
        store._events.raise_floor(manifest["next_seq"])
        with store._catalog.write() as conn:
            values = {"next_chunk_id": manifest["next_chunk_id"]}
            if not events_only:
                values.update(encoded_upto_seq=manifest["encoded_upto_seq"], ingest_state=state)
            conn.execute(update(M).where(M.id == store._memory_id).values(**values))


def _build_chunks(store, blocks, chunks: list[dict], rows, events_only: bool) -> None:
    if events_only:
        return
    layout = store.layout
    raws = _records(blocks, layout.kv_bytes, len(chunks), "kv.bin")
    with store.writer():
        for start in range(0, len(chunks), IMPORT_BATCH):
            part = chunks[start: start + IMPORT_BATCH]
            raw = np.frombuffer(b"".join(next(raws) for _ in part), dtype=np.uint8).reshape(len(part), -1)
            new = [NewChunk(c["position"], c["token_start"], c["token_end"], from_micros(c["time_start_us"]),
                            from_micros(c["time_end_us"]), c["roles"], c["text"], c["first_seq"], c["last_seq"])
                   for c in part]
            with store._catalog.write() as conn:
                mem = conn.execute(select(M).where(M.id == store._memory_id)).one()
                updates = store._write_chunks(conn, mem, new, [c["id"] for c in part],
                                              rows[start: start + len(part)], raw)
                updates["next_chunk_id"] = max(c["id"] for c in part) + 1
                conn.execute(update(M).where(M.id == store._memory_id).values(**updates))
        for _ in raws:
            pass


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def _drop_memory_rows(catalog_url: str, memory_id: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        with catalog.write() as conn:
            for table in (ChunkRow, SegmentRow, ForgottenRange, SnapshotRow):
                conn.execute(delete(table).where(table.memory_id == memory_id))
            conn.execute(delete(M).where(M.id == memory_id))
    finally:
        catalog.close()
