"""snapshot.py: .hsamem export and import.

Scenarios:
- a round trip is bit-exact: events (with checksums), chunk rows and ids, landmarks, K/V (also of
  int8-cold chunks), ingest state and cursor; seq and id counters continue identically; a re-export
  has the same member hashes (SQLite → same backend; runs on PostgreSQL too);
- each bad file raises its own error and leaves the target untouched (absent, or an empty
  directory still empty, with no leftovers beside it): unknown version, a member changed, the
  compressed stream damaged, the file cut short (inside zstd, or a whole member missing), member
  paths escaping the target (``..``, absolute, symlink, hardlink, device, fifo), model mismatch;
- with ``reencode=True`` a mismatched snapshot imports its events only, cursor at zero;
- a non-empty target is refused and left byte-identical.
"""
import io
import json
import os
import tarfile

import pytest
import torch
import zstandard

from hsa_memory.store import MemoryStore, TierPolicy
from hsa_memory.store.errors import (ModelMismatch, SnapshotChecksumError, SnapshotTruncated, SnapshotVersionError,
                                     StoreExists, UnsafeSnapshotPath)

from .fakes import LAYOUT, Feeder

POLICY = TierPolicy(warm_bytes=0, segment_bytes=3 * LAYOUT.kv_bytes + 1024, cold_codec="int8_zstd")


def build_source(path, catalog_url=None):
    store = MemoryStore.create(path, LAYOUT, "model-a", "aa" * 32, catalog_url=catalog_url, policy=POLICY)
    feed = Feeder(store)
    feed.events_and_chunks(8, text="event {i} 🙂\nwith newline")
    store.forget(chunk_ids=[3])
    store.retier()  # int8-cold chunks must come back exactly as the source serves them
    feed.event("open tail, not chunked", metadata={"tail": True})
    return store


def pack(path, members):
    """Write members [(TarInfo, bytes or None)] as a .hsamem stream, as export does."""
    with open(path, "wb") as raw:
        writer = zstandard.ZstdCompressor(write_checksum=True).stream_writer(raw, closefd=False)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        writer.close()


def unpack(path):
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as reader:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            return [(m, tar.extractfile(m).read()) for m in tar]


def replace(members, name, data):
    out = []
    for info, old in members:
        if info.name == name:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            old = data
        out.append((info, old))
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """One exported snapshot shared by the bad-file tests (each copies what it changes)."""
    tmp = tmp_path_factory.mktemp("snap")
    with build_source(tmp / "src") as store:
        store.export(tmp / "good.hsamem")
    return tmp / "good.hsamem"


def test_round_trip_is_bit_exact(tmp_path, catalog_url):
    src = build_source(tmp_path / "src", catalog_url)
    manifest = src.export(tmp_path / "out.hsamem")
    assert manifest["counts"] == {"events": 8, "chunks": 7}
    dst = MemoryStore.import_snapshot(tmp_path / "out.hsamem", tmp_path / "dst", catalog_url=catalog_url)
    try:
        assert list(dst.events()) == list(src.events())
        strip = lambda infos: [(i.id, i.position, i.token_start, i.token_end, i.time_start, i.time_end, i.roles,
                                i.text, i.first_seq, i.last_seq) for i in infos]
        ids = src.landmarks()[1].tolist()
        assert ids == dst.landmarks()[1].tolist() and 3 not in ids
        assert torch.equal(src.landmarks()[0], dst.landmarks()[0])
        assert strip(src.chunks(ids)) == strip(dst.chunks(ids))
        for a, b in zip(src.get_kv(ids), dst.get_kv(ids)):
            assert torch.equal(a.view(torch.int16), b.view(torch.int16))
        assert src.ingest_cursor() == dst.ingest_cursor()
        assert dst.verify().ok
        again = dst.export(tmp_path / "again.hsamem")
        assert again["members"] == manifest["members"]
        assert Feeder(src).event("next") == Feeder(dst).event("next") == 10
        assert Feeder(src).chunk(10, 10) == Feeder(dst).chunk(10, 10) == [9]
    finally:
        src.close()
        dst.close()


def assert_untouched(tmp_path, before):
    assert not (tmp_path / "dst").exists() or not any((tmp_path / "dst").iterdir())
    assert sorted(os.listdir(tmp_path)) == before


def bad_cases(good, tmp_path):
    """(name, file bytes, expected error) for every kind of bad snapshot."""
    data = good.read_bytes()
    members = unpack(good)
    manifest = json.loads(members[0][1])
    cases = []

    def add(name, members_or_bytes, error):
        path = tmp_path / f"{name}.hsamem"
        if isinstance(members_or_bytes, bytes):
            path.write_bytes(members_or_bytes)
        else:
            pack(path, members_or_bytes)
        cases.append((name, path, error))

    add("version", replace(members, "manifest.json", json.dumps({**manifest, "format_version": 99}).encode()),
        SnapshotVersionError)
    kv = bytearray(dict((m.name, d) for m, d in members)["kv.bin"])
    kv[100] ^= 1
    add("member-changed", replace(members, "kv.bin", bytes(kv)), SnapshotChecksumError)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    add("stream-damaged", bytes(flipped), SnapshotChecksumError)
    for fraction in (0.1, 0.5, 0.9):
        add(f"cut-{fraction}", data[: int(len(data) * fraction)], SnapshotTruncated)
    add("cut-last-byte", data[:-1], SnapshotTruncated)
    add("member-missing", members[:-1], SnapshotTruncated)
    for kind in ("dotdot", "absolute", "symlink", "hardlink", "chardev", "fifo"):
        info = tarfile.TarInfo({"dotdot": "../escape.txt", "absolute": "/tmp/escape.txt"}.get(kind, "kv.bin"))
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE,
                     "fifo": tarfile.FIFOTYPE}.get(kind, tarfile.REGTYPE)
        info.linkname = "/etc/passwd" if kind in ("symlink", "hardlink") else ""
        payload = b"pwned" if info.type == tarfile.REGTYPE else None
        info.size = len(payload or b"")
        add(f"unsafe-{kind}", members[:2] + [(info, payload)] + members[2:], UnsafeSnapshotPath)
    return cases


@pytest.mark.parametrize("target_exists", [False, True])
def test_each_bad_snapshot_raises_its_error_and_writes_nothing(good, tmp_path, target_exists):
    cases = bad_cases(good, tmp_path)
    if target_exists:
        (tmp_path / "dst").mkdir()
    before = sorted(os.listdir(tmp_path))
    for name, path, error in cases:
        with pytest.raises(error) as info:
            MemoryStore.import_snapshot(path, tmp_path / "dst")
            pytest.fail(f"{name}: no error")
        assert type(info.value) is error, f"{name}: {info.value!r}"
        assert_untouched(tmp_path, before)
    assert not (tmp_path.parent / "escape.txt").exists() and not os.path.exists("/tmp/escape.txt")
    with pytest.raises(ModelMismatch, match="model-a"):
        MemoryStore.import_snapshot(good, tmp_path / "dst", expected_model_id="model-b")
    with pytest.raises(ModelMismatch):
        MemoryStore.import_snapshot(good, tmp_path / "dst", expected_weight_hash="bb" * 32)
    assert_untouched(tmp_path, before)


def test_reencode_imports_events_only(good, tmp_path):
    with MemoryStore.import_snapshot(good, tmp_path / "dst", expected_model_id="model-b",
                                     expected_weight_hash="bb" * 32, reencode=True) as dst, \
            MemoryStore.open(good.parent / "src", policy=POLICY) as src:
        assert (dst.model_id, dst.weight_hash) == ("model-b", "bb" * 32)
        assert list(dst.events()) == list(src.events())
        assert dst.ingest_cursor() == (0, b"")
        assert dst.landmarks()[1].tolist() == []
        assert dst.verify().ok
        # ids already handed out by the old model's chunks are not reused by the re-encode
        assert Feeder(dst).chunk(1, 1) == [9]


def test_non_empty_target_is_refused(good, tmp_path):
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "notes.txt").write_bytes(b"mine")
    with pytest.raises(StoreExists):
        MemoryStore.import_snapshot(good, tmp_path / "dst")
    assert os.listdir(tmp_path / "dst") == ["notes.txt"] and (tmp_path / "dst" / "notes.txt").read_bytes() == b"mine"


def rehash(members, edits):
    """Members with ``edits`` {name: fn(bytes) -> bytes} applied and the manifest's sizes and sha256s made to
    match again: a hand-made file whose every checksum holds, so only the field checks can catch it."""
    import hashlib

    members = [(info, edits[info.name](data) if info.name in edits else data) for info, data in members]
    manifest = json.loads(members[0][1])
    for info, data in members[1:]:
        manifest["members"][info.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    out = replace(members, "manifest.json", json.dumps(manifest).encode())
    for info, data in out[1:]:
        out = replace(out, info.name, data)
    return out


def edit_json(fn, lines=False):
    def edit(data):
        if not lines:
            value = json.loads(data)
            fn(value)
            return json.dumps(value).encode()
        records = [json.loads(line) for line in data.decode().splitlines()]
        fn(records)
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    return edit


def edit_events(fn):
    """Edit the event records, then seal each with a valid checksum over its (possibly ill-typed) fields."""
    from hsa_memory.store.events import canonical, record_checksum

    def edit(data):
        records = [json.loads(line) for line in data.decode().splitlines()]
        fn(records)
        for r in records:
            r["sha256"] = record_checksum(r["seq"], r["time"], r["role"], r["text"], r["metadata"])
        return "".join(canonical(r) + "\n" for r in records).encode()
    return edit


def assert_each_refused(members, cases, tmp_path):
    """Each case ({name: edits for ``rehash``}), its checksums made to hold again, is refused by import with
    a SnapshotError and nothing written."""
    from hsa_memory.store.errors import SnapshotError

    before = sorted(os.listdir(tmp_path))
    for name, edits in cases.items():
        path = tmp_path.parent / f"{tmp_path.name}-{name}.hsamem"
        pack(path, rehash(members, edits))
        with pytest.raises(SnapshotError):
            MemoryStore.import_snapshot(path, tmp_path / "dst")
            pytest.fail(f"{name}: no error")
        assert_untouched(tmp_path, before)
        path.unlink()


def test_hand_made_fields_with_valid_checksums_raise_snapshot_errors(good, tmp_path):
    """Found by a bad-input audit: fields of the wrong type behind valid checksums went through the checks
    and failed later with TypeError, KeyError, ValueError or OverflowError, some after the target was written."""
    members = unpack(good)
    set_ = lambda key, value: edit_json(lambda m: m.__setitem__(key, value))
    cases = {
        "next_seq-string": {"manifest.json": set_("next_seq", "99")},
        "next_seq-float": {"manifest.json": set_("next_seq", 99.5)},
        "next_chunk_id-string": {"manifest.json": set_("next_chunk_id", "99")},
        "encoded_upto_seq-huge": {"manifest.json": set_("encoded_upto_seq", 10**30)},
        "counts-missing": {"manifest.json": edit_json(lambda m: m.pop("counts"))},
        "model_id-missing": {"manifest.json": edit_json(lambda m: m.pop("model_id"))},
        "weight_hash-int": {"manifest.json": set_("weight_hash", 5)},
        "event-time-garbage": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("time", "not a time"))},
        "event-time-int": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("time", 5))},
        "event-time-naive": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("time", "2024-01-01T00:00:00"))},
        "event-seq-string": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("seq", "1"))},
        "event-text-int": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("text", 5))},
        "chunk-text-missing": {"chunks.jsonl": edit_json(lambda rs: rs[0].pop("text"), lines=True)},
        "chunk-landmark-sha-missing": {"chunks.jsonl": edit_json(lambda rs: rs[0].pop("landmark_sha256"), lines=True)},
        "chunk-roles-int": {"chunks.jsonl": edit_json(lambda rs: rs[0].__setitem__("roles", 5), lines=True)},
        "chunk-time-string": {"chunks.jsonl": edit_json(lambda rs: rs[0].__setitem__("time_start_us", "x"), lines=True)},
        "chunk-position-string": {"chunks.jsonl": edit_json(lambda rs: rs[0].__setitem__("position", "0"), lines=True)},
    }
    assert_each_refused(members, cases, tmp_path)


def test_hand_made_chunk_records_that_disagree_with_the_events_raise_snapshot_errors(good, tmp_path):
    """Found by an audit: chunk records were checked for types only, so a hand-made snapshot (checksums
    recomputed) whose chunk cited first_seq=10**6 imported and verify() then said OK; forget(), which finds a
    chunk through its events, could never reach such a chunk."""
    members = unpack(good)
    # the source: events 1, 2, 4..9 (3 was forgotten with its chunk), chunks 1, 2, 4..8 of one event each

    def chunk(index, **fields):
        return {"chunks.jsonl": edit_json(lambda rs: rs[index].update(fields), lines=True)}

    def swap_ids(rs):
        rs[0]["id"], rs[1]["id"] = rs[1]["id"], rs[0]["id"]

    cases = {
        "first_seq-huge": chunk(0, first_seq=10**6),
        "span-past-the-events": chunk(0, first_seq=10**6, last_seq=10**6),
        "span-past-next_seq": chunk(6, last_seq=12),
        "first_seq-after-last_seq": chunk(1, first_seq=2, last_seq=1),
        "first_seq-zero": chunk(0, first_seq=0),
        "cites-a-forgotten-event": chunk(1, first_seq=3, last_seq=3),
        "token-span-empty": chunk(0, token_end=0),
        "token-span-backwards": chunk(2, token_start=1000, token_end=10),
        "time-backwards": chunk(0, time_start_us=10**15, time_end_us=0),
        "ids-against-positions": {"chunks.jsonl": edit_json(swap_ids, lines=True)},
        "id-zero": chunk(0, id=0),
        "cursor-past-the-log": {"manifest.json": edit_json(lambda m: m.__setitem__("encoded_upto_seq",
                                                                                  m["next_seq"]))},
        # what Memory.append refuses (found by the same audit): any role string, text with NUL, empty text
        "event-role-unknown": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("role", "narrator"))},
        "event-role-empty": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("role", ""))},
        "event-text-nul": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("text", "a\x00b"))},
        "event-text-empty": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("text", ""))},
        "event-text-blank": {"events.jsonl": edit_events(lambda rs: rs[0].__setitem__("text", " \n"))},
    }
    assert_each_refused(members, cases, tmp_path)


def test_a_chunk_spanning_a_forgotten_event_still_imports(good, tmp_path):
    """A chunk's first and last events must be in the snapshot, not every event between them: one forgotten
    while its tokens sat in the open chunk is scrubbed from it, and the chunk closes across the gap."""
    members = unpack(good)
    path = tmp_path / "gap.hsamem"
    pack(path, rehash(members, {"chunks.jsonl": edit_json(lambda rs: rs[1].update(last_seq=4), lines=True)}))
    with MemoryStore.import_snapshot(path, tmp_path / "dst") as dst:
        infos = dst.chunks(dst.landmarks()[1].tolist())
        assert [(i.first_seq, i.last_seq) for i in infos][:2] == [(1, 1), (2, 4)]
        assert dst.verify().ok
