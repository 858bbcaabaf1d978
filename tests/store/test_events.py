"""events.py: the event log, source of truth.

Scenarios:
- records round trip (unicode, newlines, nested metadata) with stable checksums;
- a torn last record (crash mid-append) is ignored by readers and cut by the next writer;
- a damaged record with valid ones after it is corruption: readers raise, verify reports, nothing is cut;
- the log rolls over into several files and ``iterate(after_seq)`` starts in the right one;
- ``rewrite_without`` removes forgotten records' bytes, and their seqs are never handed out again;
- naive times and non-JSON metadata are refused.
"""
import os
from datetime import datetime, timedelta, timezone

import pytest

from hsa_memory.store.errors import InvalidEvent, StoreCorrupted
from hsa_memory.store.events import EventLog, IntervalSet, make_event
from hsa_memory.store.records import VerifyReport

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def new_log(tmp_path, roll_bytes=1 << 20):
    folder = tmp_path / "events"
    folder.mkdir()
    log = EventLog(folder, roll_bytes=roll_bytes)
    log.recover()
    return log


def append(log, text, meta=None, minutes=0):
    seq = log.next_seq()
    log.append([make_event(seq, text, "user", T0 + timedelta(minutes=minutes), meta)])
    return seq


def test_round_trip_keeps_every_field(tmp_path):
    log = new_log(tmp_path)
    # (empty text is refused since the store applies Memory.append's rules: see the test below)
    texts = ["plain", "line one\nline two \u2028 é 日本 🙂", " \t spaces kept \t "]
    meta = {"nested": {"a": [1, 2.5, None, True]}, "k": "v"}
    seqs = [append(log, t, meta, i) for i, t in enumerate(texts)]
    assert seqs == [1, 2, 3]
    got = list(EventLog(log.dir).iterate())
    assert [e.text for e in got] == texts
    assert got[1].metadata == meta and got[1].time == T0 + timedelta(minutes=1)
    assert got[0].checksum == make_event(1, "plain", "user", T0, meta).checksum


def test_torn_tail_is_ignored_then_cut(tmp_path):
    log = new_log(tmp_path)
    append(log, "kept")
    tail = log.files()[-1][1]
    good_size = tail.stat().st_size
    with open(tail, "ab") as f:
        f.write(b'{"seq":2,"text":"half-writ')
    assert [e.text for e in EventLog(log.dir).iterate()] == ["kept"]
    writer = EventLog(log.dir)
    assert writer.recover() == len(b'{"seq":2,"text":"half-writ')
    assert tail.stat().st_size == good_size
    assert append(writer, "next") == 2


def test_damage_before_valid_records_is_corruption(tmp_path):
    log = new_log(tmp_path)
    for i in range(3):
        append(log, f"record {i}")
    tail = log.files()[-1][1]
    data = bytearray(tail.read_bytes())
    data[data.index(b"record 1")] ^= 0x20  # r → R: the checksum no longer matches
    tail.write_bytes(bytes(data))
    size = tail.stat().st_size
    writer = EventLog(log.dir)
    assert writer.recover() == 0 and writer.next_seq() == 4
    with pytest.raises(StoreCorrupted, match="damaged record"):
        list(EventLog(log.dir).iterate())
    report = VerifyReport()
    EventLog(log.dir).verify(report)
    assert not report.ok and "damaged or torn record" in report.problems[0]
    assert tail.stat().st_size == size


def test_rolls_over_and_seeks(tmp_path):
    log = new_log(tmp_path, roll_bytes=400)
    for i in range(40):
        append(log, f"event number {i}")
    assert len(log.files()) > 5
    reader = EventLog(log.dir)
    assert [e.seq for e in reader.iterate(after_seq=33)] == list(range(34, 41))
    assert [e.seq for e in reader.iterate(forgotten=IntervalSet.of([(2, 38)]))] == [1, 39, 40]
    report = VerifyReport()
    assert reader.verify(report) == 40 and report.ok


def test_rewrite_removes_bytes_and_seqs_stay_used(tmp_path):
    log = new_log(tmp_path, roll_bytes=300)
    for i in range(12):
        append(log, f"secret-{i:02d}")
    forgotten = IntervalSet.of([(3, 4), (10, 12)])
    assert log.rewrite_without(forgotten) == 5
    blob = b"".join(p.read_bytes() for p in log.dir.iterdir())
    for i in (2, 3, 9, 10, 11):  # seqs 3, 4, 10, 11, 12
        assert f"secret-{i:02d}".encode() not in blob
    assert b"secret-08" in blob
    assert [e.seq for e in EventLog(log.dir).iterate()] == [1, 2, 5, 6, 7, 8, 9]
    # the highest seqs went, yet they are not handed out again, not even by a fresh writer
    fresh = EventLog(log.dir)
    fresh.recover()
    assert append(fresh, "after") == 13
    assert not [n for n in os.listdir(log.dir) if n.startswith(".tmp-")]


def test_bad_fields_are_refused():
    with pytest.raises(InvalidEvent, match="naive"):
        make_event(1, "x", "user", datetime(2024, 1, 1), {})
    with pytest.raises(InvalidEvent, match="JSON"):
        make_event(1, "x", "user", T0, {"when": T0})
    with pytest.raises(InvalidEvent, match="JSON"):
        make_event(1, "x", "user", T0, {"bad": float("nan")})
    with pytest.raises(InvalidEvent, match="must be str"):
        make_event(1, b"bytes", "user", T0, {})
    # other zones are accepted and stored as UTC
    event = make_event(1, "x", "user", datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))), {})
    assert event.time == datetime(2024, 1, 1, 0, tzinfo=timezone.utc) and event.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text, role, problem", [
    ("x", "narrator", "is not one of"),
    ("x", "", "is not one of"),
    ("", "user", "empty"),
    (" \n", "user", "empty"),
    ("a\x00b", "user", "NUL"),
])
def test_content_memory_append_refuses_is_refused_by_the_store_too(text, role, problem):
    """Found by an audit: the store took any role string and text with NUL characters, which Memory.append
    refuses; a snapshot of such a store would not import now that import applies the same rules."""
    with pytest.raises(InvalidEvent, match=problem):
        make_event(1, text, role, T0, {})
    for role in ("system", "user", "assistant", "tool"):
        assert make_event(1, "ok", role, T0, {}).role == role
