"""Scenarios: ``--shared-haystack`` asks every needle over one encoded haystack, each in a memory whose stored
chunks hold the needle where it landed (found without a scan of the whole memory) and beyond the question's
recent window at depth 0.5; at depth 1 it lands inside that window (there, maybe still in the open chunk)."""
import niah


def test_shared_haystack_needles_are_stored_where_they_landed():
    rows = list(niah.run_shared(3000, [0.5, 1.0], [niah.SEED], {"model": "tiny", "device": "cpu"}, 2, 512, 2,
                                lambda depth, seed: False))
    assert [(r["depth"], r["haystack"]) for r in rows] == [(0.5, "shared"), (1.0, "shared")]
    for row in rows:
        assert 2500 < row["tokens"] <= 3000 and abs(row["actual_depth"] - row["depth"]) < 0.1
        # the needle's message plus the reach after it (62 tokens for the tiny preset), not the haystack
        assert row["reencoded_chunks"] <= 8
    assert rows[0]["located"] and rows[0]["far"]
    assert not rows[1]["far"] and rows[1]["tokens"] * (1 - rows[1]["actual_depth"]) < 256
