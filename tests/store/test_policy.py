"""policy.py: which warm segments go cold, and when the open one is sealed.

Scenarios:
- sealed warm segments past the age limit go cold; the open one and cold ones never move;
- over the warm byte budget, the oldest sealed segments go first, until under budget;
- the open segment is sealed when an append would pass segment_bytes, or when it is too old.
"""
from hsa_memory.store.policy import SegmentStat, TierPolicy, segments_to_cool, should_seal

DAY = 86_400 * 10**6


def seg(i, tier="warm", size=100, sealed=True, age_days=0.0, now=100 * DAY):
    return SegmentStat(i, tier, size, 1, sealed, now - int(age_days * DAY))


def test_age_moves_old_sealed_segments():
    policy = TierPolicy(warm_max_age_s=7 * 86_400, warm_bytes=10**9)
    segs = [seg(1, age_days=9), seg(2, age_days=1), seg(3, sealed=False, age_days=30), seg(4, "cold", age_days=50)]
    assert segments_to_cool(policy, segs, 100 * DAY) == [1]


def test_budget_moves_oldest_first():
    policy = TierPolicy(warm_max_age_s=1e9, warm_bytes=250)
    segs = [seg(1, age_days=1), seg(2, age_days=3), seg(3, age_days=2), seg(4, sealed=False, age_days=4)]
    # 400 bytes warm, budget 250: the two oldest sealed (2, then 3) go; the open one stays
    assert segments_to_cool(policy, segs, 100 * DAY) == [2, 3]


def test_sealing():
    policy = TierPolicy(segment_bytes=1000, warm_max_age_s=86_400)
    now = 100 * DAY
    assert not should_seal(policy, SegmentStat(1, "warm", 64, 0, False, now - 5 * DAY), 5000, now)  # empty
    assert should_seal(policy, SegmentStat(1, "warm", 900, 3, False, now), 200, now)
    assert not should_seal(policy, SegmentStat(1, "warm", 700, 3, False, now), 200, now)
    assert should_seal(policy, SegmentStat(1, "warm", 100, 1, False, now - 2 * DAY), 0, now)
