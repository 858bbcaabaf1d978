"""segments.py: K/V segment files.

Scenarios:
- the header round trips and names the codec; records start 64-byte aligned;
- an append starts at the committed size and cuts an uncommitted leftover first;
- a new segment is written whole, durably, under its final name only at the end;
- a bad magic or a record past the end of the file is StoreCorrupted.
"""
import pytest

from hsa_memory.store import segments
from hsa_memory.store.errors import StoreCorrupted


def test_header_round_trip(tmp_path):
    path = tmp_path / "a.seg"
    start = segments.create(path, {"codec": "zstd_shuffle", "tier": "cold", "segment_id": 7})
    header, offset = segments.read_header(path)
    assert header["codec"] == "zstd_shuffle" and header["segment_id"] == 7
    assert offset == start == path.stat().st_size and start % 64 == 0


def test_append_overwrites_uncommitted_leftovers(tmp_path):
    path = tmp_path / "a.seg"
    start = segments.create(path, {"codec": "raw"})
    offsets = segments.append(path, start, [b"one", b"three"])
    assert offsets == [start, start + 3]
    # a writer died after writing "GARBAGE" but before its catalog commit: committed size is start+8
    with open(path, "ab") as f:
        f.write(b"GARBAGE")
    offsets = segments.append(path, start + 8, [b"four"])
    assert offsets == [start + 8]
    assert path.read_bytes()[start:] == b"onethreefour"
    assert segments.read_record(path, start + 3, 5) == b"three"


def test_write_new_is_complete_under_its_name(tmp_path):
    path = tmp_path / "b.seg"
    offsets = segments.write_new(path, {"codec": "raw"}, [b"x" * 10, b"y" * 5])
    assert segments.read_record(path, offsets[1], 5) == b"yyyyy"
    assert [p.name for p in tmp_path.iterdir()] == ["b.seg"]


def test_damage_is_typed(tmp_path):
    path = tmp_path / "c.seg"
    path.write_bytes(b"NOTASEGMENT-------")
    with pytest.raises(StoreCorrupted, match="bad magic"):
        segments.read_header(path)
    good = tmp_path / "d.seg"
    start = segments.create(good, {"codec": "raw"})
    with pytest.raises(StoreCorrupted, match="wants 10 bytes"):
        segments.read_record(good, start, 10)
