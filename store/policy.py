"""When segments move between tiers: by age and by a byte budget per tier.

New chunks land in the open warm segment. A warm segment is sealed once it reaches
``segment_bytes``; sealed warm segments go cold when older than ``warm_max_age_s`` or, oldest
first, while the warm tier is over ``warm_bytes``. The hot tier is an LRU bounded by
``hot_bytes`` (per process). Cold is the floor and has no budget.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TierPolicy:
    # decoded chunks kept per process; 256 MiB is ~16k chunks of a 1-head, 64-dim bf16 layout
    hot_bytes: int = 256 << 20
    # where hot chunks live ("cuda" keeps retrieved K/V on the GPU); None is the CPU
    hot_device: str | None = None
    warm_bytes: int = 1 << 30
    # a week: recent conversation stays cheap to read, older history compresses
    warm_max_age_s: float = 7 * 86_400.0
    # large enough that a file holds thousands of chunks, small enough to rewrite in a blink
    segment_bytes: int = 16 << 20
    # "zstd_shuffle" is lossless; "int8_zstd" is about half its size with bounded error
    cold_codec: str = "zstd_shuffle"


@dataclass(frozen=True)
class SegmentStat:
    id: int
    tier: str
    size: int
    chunks: int
    sealed: bool
    created_us: int

    @classmethod
    def of(cls, row) -> "SegmentStat":
        """From a catalog segment row."""
        return cls(row.id, row.tier, row.size, row.chunk_count, row.sealed, row.created_us)


def segments_to_cool(policy: TierPolicy, segments: list[SegmentStat], now_us: int) -> list[int]:
    """Ids of the warm segments that should go cold now, oldest first."""
    warm = sorted((s for s in segments if s.tier == "warm"), key=lambda s: (s.created_us, s.id))
    max_age_us = int(policy.warm_max_age_s * 1e6)
    moves = [s for s in warm if s.sealed and now_us - s.created_us >= max_age_us]
    warm_total = sum(s.size for s in warm) - sum(s.size for s in moves)
    for s in warm:
        if warm_total <= policy.warm_bytes:
            break
        if s.sealed and s not in moves:
            moves.append(s)
            warm_total -= s.size
    return [s.id for s in sorted(moves, key=lambda s: (s.created_us, s.id))]


def should_seal(policy: TierPolicy, segment: SegmentStat, incoming: int, now_us: int) -> bool:
    """Whether the open warm segment is closed before ``incoming`` more bytes are appended."""
    if segment.chunks == 0:
        return False
    too_big = segment.size + incoming > policy.segment_bytes
    too_old = now_us - segment.created_us >= int(policy.warm_max_age_s * 1e6)
    return too_big or too_old
