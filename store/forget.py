"""What a ``forget`` call reaches: events and chunks, closed under "made from".

A chunk is made from the events ``first_seq..last_seq``. Forgetting a chunk forgets those events
(so rebuilding from the event log can never bring its text back), and forgetting an event forgets
every chunk made from it. The two rules are applied until nothing new is reached, so forgetting one
chunk of a long document forgets the whole document and every chunk of it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .events import IntervalSet
from .records import Event, utc


@dataclass(frozen=True)
class EventFilter:
    """Events with ``after <= time < before`` whose metadata holds every ``where`` item."""

    before: datetime | None = None
    after: datetime | None = None
    where: dict | None = None

    def __post_init__(self) -> None:
        if self.before is not None:
            object.__setattr__(self, "before", utc(self.before, "before"))
        if self.after is not None:
            object.__setattr__(self, "after", utc(self.after, "after"))

    @property
    def empty(self) -> bool:
        return self.before is None and self.after is None and not self.where

    def matches(self, event: Event) -> bool:
        if self.before is not None and not event.time < self.before:
            return False
        if self.after is not None and not event.time >= self.after:
            return False
        if self.where:
            return all(k in event.metadata and event.metadata[k] == v for k, v in self.where.items())
        return True


def ranges_of(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return [(lo, hi) for lo, hi in out]


def closure(event_ranges: list[tuple[int, int]], chunk_spans: list[tuple[int, int, int]],
            chunk_ids: set[int]) -> tuple[set[int], IntervalSet]:
    """Chunks and event ranges reached from ``event_ranges`` and ``chunk_ids``.

    ``chunk_spans`` are (id, first_seq, last_seq) of the live chunks.
    """
    spans = {cid: (lo, hi) for cid, lo, hi in chunk_spans}
    chosen = {cid for cid in chunk_ids if cid in spans}
    ranges = list(event_ranges) + [spans[cid] for cid in chosen]
    while True:
        events = IntervalSet.of(ranges)
        new = [cid for cid, (lo, hi) in spans.items() if cid not in chosen and events.overlaps(lo, hi)]
        if not new:
            return chosen, events
        chosen.update(new)
        ranges = events.ranges() + [spans[cid] for cid in new]
