"""verify.py: verify() finds damage, repair() fixes what can be fixed (SQLite and PostgreSQL).

Scenarios:
- a healthy store verifies, with counts of what was checked;
- a flipped byte in a K/V segment or in the landmark matrix, and a missing segment file, are
  reported by area; repair() without a rebuild callback refuses (RepairNeedsRebuild); with one, the
  derived data is rebuilt from the event log and verifies again, old ids gone, new ones exact;
- leftover files (an orphan segment, a temp file) are reported and repair() removes them;
- a damaged event log record is reported and repair() refuses (StoreCorrupted): it is the source
  of truth;
- repair(model_id=, weight_hash=) moves the memory to new weights: derived data dropped, identity
  recorded (also after reopening), events kept, and rebuilt when a callback is given.
"""
import pytest
import torch

from hsa_memory.store import MemoryStore
from hsa_memory.store.errors import ChunkNotFound, RepairNeedsRebuild, StoreCorrupted

from .fakes import LAYOUT, Feeder, expected_kv


@pytest.fixture
def store(tmp_path, catalog_url):
    s = MemoryStore.create(tmp_path / "mem", LAYOUT, "m", "h" * 64, catalog_url=catalog_url)
    Feeder(s).events_and_chunks(5)
    yield s
    s.close()


def rebuild(store):
    """The Memory API's re-encode, faked: one chunk per event, K/V a function of position."""
    feed = Feeder(store)
    for event in list(store.events()):
        feed.chunk(event.seq, event.seq)


def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_healthy(store):
    report = store.verify()
    assert report.ok and report.problems == []
    assert report.checked == {"events": 5, "chunks": 5, "forgotten_chunks": 0, "segments": 1}


@pytest.mark.parametrize("damage", ["kv", "landmarks", "missing"])
def test_derived_damage_is_found_and_rebuilt(store, damage):
    root = store.paths.root
    seg = next((root / "kv" / "warm").iterdir())
    if damage == "kv":
        flip(seg, seg.stat().st_size - 10)  # inside the last chunk's values
    elif damage == "landmarks":
        flip(next(root.glob("landmarks-*.f32")), 64 + 2 * LAYOUT.landmark_bytes + 3)
    else:
        seg.unlink()
    report = store.verify()
    assert not report.ok
    expected = {"kv": "kv: chunk 5 record", "landmarks": "landmarks: row 2 of chunk 3",
                "missing": "kv: segment 1 file"}[damage]
    assert any(p.startswith(expected) for p in report.problems), report.problems
    with pytest.raises(RepairNeedsRebuild):
        store.repair()
    fixed = store.repair(rebuild)
    assert fixed.ok, fixed.problems
    new_ids = store.landmarks()[1].tolist()
    assert new_ids == [6, 7, 8, 9, 10]
    with pytest.raises(ChunkNotFound):
        store.get_kv([1])
    keys, _ = store.get_kv(new_ids)
    assert all(torch.equal(keys[i], expected_kv(i)[0]) for i in range(5))
    assert store.ingest_cursor()[0] == 5


def test_leftover_files_are_swept(store):
    root = store.paths.root
    (root / "kv" / "cold" / "000000000099.seg").write_bytes(b"half-written rewrite")
    (root / "events" / ".tmp-abc-00000000000000000001.jsonl").write_bytes(b"x")
    report = store.verify()
    assert sorted(p.split()[1] for p in report.problems) == \
        ["events/.tmp-abc-00000000000000000001.jsonl", "kv/cold/000000000099.seg"]
    assert store.repair().ok
    assert not (root / "kv" / "cold" / "000000000099.seg").exists()


def test_event_log_damage_is_not_papered_over(store, catalog_url):
    log_file = next((store.paths.root / "events").iterdir())
    data = log_file.read_bytes()
    flip(log_file, data.index(b"event 2"))
    store.close()
    store = MemoryStore.open(log_file.parent.parent, catalog_url=catalog_url)  # still opens, to be inspected
    report = store.verify()
    assert any(p.startswith("events: ") for p in report.problems)
    with pytest.raises(StoreCorrupted, match="restore from a snapshot"):
        store.repair(rebuild)
    with pytest.raises(StoreCorrupted):
        list(store.events())
    store.close()


def test_new_weights_drop_derived_data(store, catalog_url):
    report = store.repair(model_id="m2", weight_hash="cd" * 32)
    assert report.ok and (store.model_id, store.weight_hash) == ("m2", "cd" * 32)
    assert store.ingest_cursor() == (0, b"") and store.landmarks()[1].tolist() == []
    assert len(list(store.events())) == 5
    root = store.paths.root
    store.close()
    with MemoryStore.open(root, catalog_url=catalog_url) as again:
        assert again.model_id == "m2"
        assert again.repair(rebuild, weight_hash="ef" * 32).ok
        assert again.weight_hash == "ef" * 32 and again.landmarks()[1].tolist() == [6, 7, 8, 9, 10]


def test_a_chunk_closed_across_an_event_forgotten_in_the_open_chunk_verifies(store):
    """Found by an audit: forget() of an event whose tokens sat in the open chunk scrubs them, and the chunk
    closes later with first_seq..last_seq spanning the forgotten seq (the Memory API does this: append, forget
    where=..., append more). verify() called that chunk 'live but made from forgotten events' and repair()
    would re-encode the whole memory into the same report."""
    feed = Feeder(store)
    first = feed.event("kept", minutes=10)
    gone = feed.event("secret", minutes=11, metadata={"s": "x"})
    assert store.forget(where={"s": "x"}) == 1
    last = feed.event("kept too", minutes=12)
    feed.chunk(first, last)
    assert first < gone < last
    report = store.verify()
    assert report.ok, report.problems


@pytest.mark.parametrize("fields, problem", [
    ({"first_seq": 10**6}, "event span 1000000..3 is invalid"),
    ({"first_seq": 0}, "event span 0..3 is invalid"),
    ({"token_end": 0}, "token span 128..0 is empty or backwards"),
    ({"time_start_us": 2**62}, "time span starts after it ends"),
    ({"id": 99}, "has a lower id than chunk 99 before it"),
])
def test_inconsistent_chunk_rows_are_reported(store, fields, problem):
    """Found by an audit: verify() checked a chunk's last_seq against the log and nothing else of its spans, so a
    row whose first_seq was 10**6 (as a hand-made snapshot could import) verified OK."""
    from sqlalchemy import update

    from hsa_memory.store.catalog import ChunkRow, MemoryRow

    with store._catalog.write() as conn:
        conn.execute(update(MemoryRow).where(MemoryRow.id == store._memory_id).values(next_chunk_id=100))
        conn.execute(update(ChunkRow).where(ChunkRow.memory_id == store._memory_id, ChunkRow.id == 3)
                     .values(**fields))
    report = store.verify()
    assert any(problem in p for p in report.problems), report.problems


def test_a_chunk_citing_a_seq_the_log_never_held_is_reported(store):
    """A seq inside the log's range that no record holds (skipped by a snapshot's floor, say) and that was not
    forgotten: no live chunk can be made from it."""
    from sqlalchemy import update

    from hsa_memory.store.catalog import ChunkRow

    store._events.raise_floor(20)
    Feeder(store).event("after the floor")
    with store._catalog.write() as conn:
        conn.execute(update(ChunkRow).where(ChunkRow.memory_id == store._memory_id, ChunkRow.id == 5)
                     .values(first_seq=12, last_seq=12))
    report = store.verify()
    assert report.problems == ["catalog: chunk 5 cites seqs [12], which are no records of the event log"]
