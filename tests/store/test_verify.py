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
