"""The event log: the source of truth every derived structure can be rebuilt from.

One JSON record per line, in files named after the first sequence number they may hold
(``events/00000000000000000001.jsonl``); a file rolls over past ``roll_bytes``. A record carries the
sha256 of its canonical fields, so a torn last line (a crash mid-append) is recognised and cut
off by the next writer, while damage anywhere else is reported, never silently skipped.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import InvalidEvent, StoreCorrupted
from .fsio import fsync_dir, is_temp_name, publish, remove_durably, temp_path
from .records import Event, VerifyReport, utc

SUFFIX = ".jsonl"
# the roles of the interaction stream (hsa_memory.Memory.append takes these; ChatML renders each)
ROLES = ("system", "user", "assistant", "tool")


def _first_seq(path: Path) -> int:
    return int(path.name[: -len(SUFFIX)])


def canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_checksum(seq: int, time_iso: str, role: str, text: str, metadata: dict) -> str:
    return hashlib.sha256(canonical([seq, time_iso, role, text, metadata]).encode()).hexdigest()


def encode_event(event: Event) -> bytes:
    record = {"seq": event.seq, "time": event.time.isoformat(timespec="microseconds"), "role": event.role,
              "text": event.text, "metadata": event.metadata, "sha256": event.checksum}
    return (canonical(record) + "\n").encode()


def content_problem(text: str, role: str) -> str | None:
    """Why an event's role or text is refused (what ``Memory.append`` refuses), or None."""
    if role not in ROLES:
        return f"role {role[:40]!r} is not one of {list(ROLES)}"
    if not text.strip():
        return "text is empty or whitespace only"
    if "\x00" in text:
        return "text contains NUL characters (binary data?)"
    return None


def make_event(seq: int, text: str, role: str, time: datetime, metadata: dict | None) -> Event:
    """Validate one append's fields and seal them with their checksum."""
    if not isinstance(text, str) or not isinstance(role, str):
        raise InvalidEvent(f"text and role must be str, got {type(text).__name__} and {type(role).__name__}")
    problem = content_problem(text, role)
    if problem is not None:
        raise InvalidEvent(problem)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise InvalidEvent(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        # a round trip makes the stored value the one that later reads (and checksums) see
        metadata = json.loads(canonical(metadata))
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"metadata is not JSON-serialisable: {exc}") from None
    t = utc(time)
    iso = t.isoformat(timespec="microseconds")
    return Event(seq, text, role, t, metadata, record_checksum(seq, iso, role, text, metadata))


def decode_line(line: bytes) -> Event | None:
    """An event, or None when the line is torn or fails its checksum."""
    if not line.endswith(b"\n"):
        return None
    try:
        rec = json.loads(line)
        seq, iso, role, text, meta, digest = (rec["seq"], rec["time"], rec["role"], rec["text"],
                                              rec["metadata"], rec["sha256"])
        # a record can carry a valid checksum over ill-typed fields (a hand-made snapshot): refuse those too
        if not (type(seq) is int and seq > 0 and isinstance(iso, str) and isinstance(role, str)
                and isinstance(text, str) and isinstance(meta, dict) and isinstance(digest, str)):
            return None
        if record_checksum(seq, iso, role, text, meta) != digest:
            return None
        time = datetime.fromisoformat(iso)
    except (ValueError, KeyError, TypeError):
        return None
    if time.tzinfo is None or time.utcoffset() is None:
        return None
    return Event(seq, text, role, time, meta, digest)


@dataclass
class IntervalSet:
    """Sorted, disjoint, inclusive ``[lo, hi]`` ranges of sequence numbers."""

    los: list[int]
    his: list[int]

    @classmethod
    def of(cls, ranges: Iterable[tuple[int, int]]) -> "IntervalSet":
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return cls([m[0] for m in merged], [m[1] for m in merged])

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self.los, seq) - 1
        return i >= 0 and seq <= self.his[i]

    def overlaps(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_right(self.los, hi) - 1
        return i >= 0 and self.his[i] >= lo

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.los, self.his))

    def __bool__(self) -> bool:
        return bool(self.los)


class EventLog:
    def __init__(self, directory: str | os.PathLike, roll_bytes: int = 64 << 20):
        self.dir = Path(directory)
        self.roll_bytes = roll_bytes
        self._tail: Path | None = None
        self._tail_ino: int | None = None
        self._tail_size = 0
        self._last_seq = 0

    def next_seq(self) -> int:
        """The seq the next append gets, as of the last ``recover()``.

        A tail file's name is a floor: compaction leaves an empty file named past the highest seq it
        removed, so a forgotten seq is never handed out again.
        """
        floor = _first_seq(self._tail) if self._tail is not None else 1
        return max(self._last_seq + 1, floor)

    def raise_floor(self, next_seq: int) -> None:
        """Make sure the next append gets at least ``next_seq`` (an empty tail file records it)."""
        self.recover()
        if self.next_seq() < next_seq:
            (self.dir / f"{next_seq:020d}{SUFFIX}").touch()
            fsync_dir(self.dir)
            self.recover()

    def peek_last_seq(self) -> int:
        """Highest seq on disk now, without the writer lock (for stats)."""
        files = self.files()
        for _, path in reversed(files):
            last = 0
            for _, line in self._read_lines(path):
                event = decode_line(line)
                if event is not None:
                    last = event.seq
            if last:
                return last
        return 0

    def files(self) -> list[tuple[int, Path]]:
        out = []
        for name in os.listdir(self.dir):
            if name.endswith(SUFFIX) and not is_temp_name(name):
                out.append((int(name[: -len(SUFFIX)]), self.dir / name))
        return sorted(out)

    def _read_lines(self, path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                offset = start
                for line in f:
                    yield offset, line
                    offset += len(line)
        except FileNotFoundError:
            return

    def recover(self) -> int:
        """Bring the writer's view up to date and cut a torn tail; returns the bytes cut.

        Call only while holding the writer lock: the cut must not race an append.
        """
        files = self.files()
        if not files:
            self._tail, self._tail_ino, self._tail_size, self._last_seq = None, None, 0, 0
            return 0
        _, tail = files[-1]
        st = tail.stat()
        same_file = tail == self._tail and st.st_ino == self._tail_ino
        if same_file and st.st_size == self._tail_size:
            return 0
        # appends only grow a file; compaction swaps in a new inode, which is read from the start
        start = self._tail_size if same_file and st.st_size > self._tail_size else 0
        good_end, last_seq = start, self._last_seq if start else None
        for offset, line in self._read_lines(tail, start):
            event = decode_line(line)
            # a damaged record with valid ones after it stays for verify() to report; only a damaged
            # tail, an append that never returned, is cut
            if event is not None:
                good_end, last_seq = offset + len(line), event.seq
        if last_seq is None:
            last_seq = self._last_seq_before(files)
        cut = st.st_size - good_end
        if cut:
            with open(tail, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())
        self._tail, self._tail_ino, self._tail_size, self._last_seq = tail, st.st_ino, good_end, last_seq
        return cut

    def _last_seq_before(self, files: list[tuple[int, Path]]) -> int:
        for _, path in reversed(files[:-1]):
            last = 0
            for _, line in self._read_lines(path):
                event = decode_line(line)
                if event is not None:
                    last = event.seq
            if last:
                return last
        return 0

    def append(self, events: list[Event]) -> None:
        """Write already-numbered events and fsync them; the writer lock must be held."""
        if not events:
            return
        data = b"".join(encode_event(e) for e in events)
        if self._tail is None or (self._tail_size and self._tail_size + len(data) > self.roll_bytes):
            self._tail = self.dir / f"{events[0].seq:020d}{SUFFIX}"
            self._tail_size = 0
            fd = os.open(self._tail, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._tail_ino = os.fstat(fd).st_ino
            fsync_dir(self.dir)
        else:
            fd = os.open(self._tail, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fdatasync(fd)
        except BaseException:
            # a half-written record must not sit under the next append
            os.ftruncate(fd, self._tail_size)
            raise
        finally:
            os.close(fd)
        self._tail_size += len(data)
        self._last_seq = events[-1].seq

    def iterate(self, after_seq: int = 0, forgotten: IntervalSet | None = None) -> Iterator[Event]:
        """Live events with ``seq > after_seq`` in order; a torn last line (an append in flight) ends it."""
        files = self.files()
        firsts = [first for first, _ in files]
        start = max(0, bisect.bisect_right(firsts, after_seq + 1) - 1)
        for index in range(start, len(files)):
            path = files[index][1]
            last_file = index == len(files) - 1
            pending_bad = None
            for offset, line in self._read_lines(path):
                event = decode_line(line)
                if event is None:
                    pending_bad = offset
                    continue
                if pending_bad is not None:
                    raise StoreCorrupted(f"event log {path} has a damaged record at byte {pending_bad}; "
                                         "run verify()")
                if event.seq <= after_seq or (forgotten and event.seq in forgotten):
                    continue
                yield event
            if pending_bad is not None and not last_file:
                raise StoreCorrupted(f"event log {path} has a damaged record at byte {pending_bad}; run verify()")

    def count(self, ranges: IntervalSet, forgotten: IntervalSet | None = None) -> int:
        """Live events inside ``ranges``, reading only the files that can hold them."""
        total = 0
        for lo, hi in ranges.ranges():
            for event in self.iterate(lo - 1, forgotten):
                if event.seq > hi:
                    break
                total += 1
        return total

    def rewrite_without(self, forgotten: IntervalSet) -> int:
        """Rewrite every file holding forgotten records without them; returns records removed."""
        removed = 0
        self.recover()
        high = self._last_seq
        files = self.files()
        for index, (first, path) in enumerate(files):
            keep, dropped = [], 0
            for _, line in self._read_lines(path):
                event = decode_line(line)
                if event is not None and event.seq in forgotten:
                    dropped += 1
                else:
                    keep.append(line)
            if not dropped:
                continue
            removed += dropped
            if not keep and index < len(files) - 1:
                remove_durably(path)
                continue
            tmp = temp_path(path)
            with open(tmp, "wb") as f:
                f.write(b"".join(keep))
                f.flush()
                os.fsync(f.fileno())
            publish(tmp, path)
        self._tail, self._tail_ino, self._tail_size = None, None, 0
        self.recover()
        # when the highest seqs went, an empty tail file named past them keeps them from coming back
        self.raise_floor(high + 1)
        return removed

    def verify(self, report: VerifyReport, seqs: IntervalSet | None = None) -> int:
        """Check every record's checksum and the seq order; returns the number of records seen.

        ``seqs``, when given (empty), receives the seqs of the records that pass, as runs of consecutive seqs."""
        previous, count = 0, 0
        for first, path in self.files():
            for offset, line in self._read_lines(path):
                event = decode_line(line)
                if event is None:
                    report.add(f"event log {path.name}: damaged or torn record at byte {offset}")
                    continue
                if event.seq <= previous or event.seq < first:
                    report.add(f"event log {path.name}: seq {event.seq} out of order after {previous}")
                if seqs is not None and event.seq > previous:
                    if seqs.his and seqs.his[-1] + 1 == event.seq:
                        seqs.his[-1] = event.seq
                    else:
                        seqs.los.append(event.seq)
                        seqs.his.append(event.seq)
                previous = max(previous, event.seq)
                count += 1
        return count
