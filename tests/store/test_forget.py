"""forget.py: what a forget reaches.

Scenarios:
- forgetting a chunk forgets its events, and with them every other chunk made from those events;
- forgetting events forgets the chunks made from them, transitively across shared events;
- the event filter: half-open time range, metadata equality on every key, naive bounds refused.
"""
from datetime import datetime, timedelta, timezone

import pytest

from hsa_memory.store.errors import InvalidEvent
from hsa_memory.store.forget import EventFilter, closure, ranges_of
from hsa_memory.store.records import Event

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
# chunks (id, first_seq, last_seq): a long event 3 spans chunks 2..4; chunk 4 also holds event 4
SPANS = [(1, 1, 2), (2, 3, 3), (3, 3, 3), (4, 3, 4), (5, 5, 5), (6, 6, 7)]


def test_chunk_takes_its_events_and_their_chunks():
    chunks, events = closure([], SPANS, {3})
    assert chunks == {2, 3, 4}
    assert events.ranges() == [(3, 4)]


def test_events_take_their_chunks_transitively():
    chunks, events = closure(ranges_of([2]), SPANS, set())
    assert chunks == {1} and events.ranges() == [(1, 2)]
    chunks, events = closure(ranges_of([4, 7]), SPANS, set())
    assert chunks == {2, 3, 4, 6} and events.ranges() == [(3, 4), (6, 7)]
    chunks, events = closure(ranges_of([9]), SPANS, set())  # an event not chunked yet
    assert chunks == set() and events.ranges() == [(9, 9)]


def test_event_filter():
    e = lambda minutes, meta: Event(1, "t", "user", T0 + timedelta(minutes=minutes), meta, "")
    flt = EventFilter(before=T0 + timedelta(minutes=10), after=T0 + timedelta(minutes=5), where={"user": "ann"})
    assert flt.matches(e(5, {"user": "ann", "x": 1}))
    assert not flt.matches(e(10, {"user": "ann"}))
    assert not flt.matches(e(7, {"user": "bob"}))
    assert not flt.matches(e(7, {}))
    assert EventFilter(where={"missing": None}).matches(e(0, {"missing": None}))
    assert not EventFilter(where={"missing": None}).matches(e(0, {}))
    assert EventFilter().empty
    with pytest.raises(InvalidEvent, match="naive"):
        EventFilter(before=datetime(2024, 1, 1))
