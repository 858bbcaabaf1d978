"""Plain records crossing the store's public API."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import InvalidEvent

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc(t: datetime, what: str = "time") -> datetime:
    """A tz-aware time in UTC; naive times are refused because their zone is a guess."""
    if not isinstance(t, datetime):
        raise InvalidEvent(f"{what} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidEvent(f"{what} {t.isoformat()} is naive; pass a tz-aware time, e.g. datetime.now(timezone.utc)")
    return t.astimezone(timezone.utc)


def to_micros(t: datetime) -> int:
    """Whole microseconds since the epoch: exact, and the same on every catalog backend."""
    delta = utc(t) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_us() -> int:
    return to_micros(datetime.now(timezone.utc))


def from_micros(us: int) -> datetime:
    from datetime import timedelta

    return EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class Event:
    """One appended record of the interaction stream, as stored in the event log."""

    seq: int
    text: str
    role: str
    time: datetime
    metadata: dict
    checksum: str


@dataclass(frozen=True)
class NewChunk:
    """What the encoder knows of a chunk it hands to ``add_chunks``."""

    position: int
    token_start: int
    token_end: int
    time_start: datetime
    time_end: datetime
    roles: list[str]
    text: str
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class ChunkInfo:
    """A chunk's catalog row; ``text`` is empty once the chunk is forgotten."""

    id: int
    position: int
    token_start: int
    token_end: int
    time_start: datetime
    time_end: datetime
    roles: list[str]
    text: str
    first_seq: int
    last_seq: int
    segment: int | None
    tier: str
    deleted: bool


@dataclass
class VerifyReport:
    """``ok`` is True when ``problems`` is empty; each problem names the file or row at fault."""

    ok: bool = True
    problems: list[str] = field(default_factory=list)
    checked: dict = field(default_factory=dict)

    def add(self, problem: str) -> None:
        self.problems.append(problem)
        self.ok = False

    def __bool__(self) -> bool:
        return self.ok
