"""Agent-memory histories: determinism, length, well-formed sessions, exact evidence, held-out split.

Scenarios: same seed → same history; lengths within 2%; times and sessions only move forward;
every answer is the latest value of its fact and occurs (as a whole word) in exactly one message,
the evidence, after all its decoys; tool answers sit in tool messages; held-out examples use
names, places and venues no training example can draw, and paraphrases training never sees.
"""
import re

import pytest

from hsa_memory.training.data import vocab
from hsa_memory.training.data.agent_memory import SLOTS, TOOL_SLOTS, agent_memory
from hsa_memory.training.data.corpora import Gloss
from hsa_memory.training.data.text import estimate_tokens

GLOSSES = [Gloss(("serendipity",), "noun", "good luck in making unexpected discoveries", ("a happy serendipity",)),
           Gloss(("Zanzibar",), "noun", "an island off Tanzania", ())]
QUOTES = ["A friend is a present you give yourself.\n-- Robert Louis Stevenson"]


def word_hits(example, answer):
    pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)")
    return [m.id for m in example.messages if pattern.search(m.content)]


def test_same_seed_same_history_other_seed_differs():
    assert agent_memory(seed=3, target_tokens=1500) == agent_memory(seed=3, target_tokens=1500)
    assert agent_memory(seed=3, target_tokens=1500).to_dict() != agent_memory(seed=4, target_tokens=1500).to_dict()


@pytest.mark.parametrize("target", [1024, 4096, 12000])
def test_length_hits_target(target):
    for seed in range(3):
        example = agent_memory(seed=seed, target_tokens=target, glosses=GLOSSES, quotes=QUOTES)
        n = estimate_tokens(example.to_chatml().text)
        assert n == example.metadata["n_tokens"]
        assert abs(n - target) <= 0.021 * target, (seed, n)


def test_sessions_and_times_move_forward():
    example = agent_memory(seed=8, target_tokens=4000)
    times = [m.time for m in example.messages]
    sessions = [m.session for m in example.messages]
    assert times == sorted(times) and sessions == sorted(sessions)
    assert len(set(sessions)) == example.metadata["sessions"] >= 2
    assert {m.role for m in example.messages} <= {"user", "assistant", "tool"}
    assert len({m.id for m in example.messages}) == len(example.messages)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_answers_are_latest_values_with_exact_evidence(split):
    kinds = set()
    for seed in range(25):
        example = agent_memory(seed=seed, target_tokens=3000, split=split, glosses=GLOSSES, quotes=QUOTES)
        facts = {f["key"]: f for f in example.metadata["facts"]}
        order = {m.id: i for i, m in enumerate(example.messages)}
        assert 1 <= len(example.questions) <= 4
        for question in example.questions:
            kinds.add(question.kind)
            fact = facts[question.metadata["fact"]]
            assert question.answer == fact["values"][-1]
            assert question.metadata["decoys"] == fact["values"][:-1]
            assert word_hits(example, question.answer) == question.evidence_message_ids
            (evidence,) = question.evidence_message_ids
            assert all(order[d] < order[evidence] for d in question.metadata["decoy_message_ids"])
            assert question.answer not in question.text
            assert question.answer in question.reply
            if question.kind.startswith("tool"):
                assert example.message(evidence).role == "tool"
            else:
                assert example.message(evidence).role == "user"
    assert kinds == {"static", "updated", "tool", "tool_updated"}


def test_answers_avoid_filler_from_corpora():
    # a filler corpus full of pool words: paragraphs naming any value must be skipped
    filler = [f"{city} is lovely; so is {food}." for city in vocab.CITIES for food in vocab.FOODS[:3]]
    example = agent_memory(seed=1, target_tokens=3000, filler=filler)
    for question in example.questions:
        assert word_hits(example, question.answer) == question.evidence_message_ids


def test_heldout_entities_never_reachable_from_train():
    open_items = {item for pool in (vocab.FIRST_NAMES, vocab.CITIES, vocab.PET_NAMES) for item in pool}
    for split in ("train", "heldout"):
        for seed in range(15):
            example = agent_memory(seed=seed, target_tokens=2000, split=split)
            for fact in example.metadata["facts"]:
                for value in fact["values"] + list(fact["context"].values()):
                    if value in open_items:
                        assert vocab.is_heldout(value) == (split == "heldout"), (split, value)
                    for word in vocab.COMPANY_PREFIXES + vocab.VENUE_WORDS:
                        if re.search(rf"(?<!\w){word}(?!\w)", value):
                            assert vocab.is_heldout(word) == (split == "heldout"), (split, value)


def test_pool_partition_is_disjoint_and_covers():
    for name, pool in vocab.OPEN_POOLS.items():
        train, heldout = set(vocab.split_pool(pool, "train")), set(vocab.split_pool(pool, "heldout"))
        assert not train & heldout and train | heldout == set(pool), name
        assert len(heldout) >= 10 and len(train) >= 3 * len(heldout), name


def test_reserved_paraphrases_only_in_heldout():
    def reserved(question):
        slot, field, index = question.metadata["template"]
        templates = {s.name: s.questions for s in SLOTS} | {t.name: t.questions.get(field) for t in TOOL_SLOTS}
        return index == len(templates[slot]) - 1

    train = [q for seed in range(40) for q in agent_memory(seed=seed, target_tokens=1500).questions]
    heldout = [q for seed in range(40) for q in agent_memory(seed=seed, target_tokens=1500, split="heldout").questions]
    assert not any(reserved(q) for q in train)
    assert sum(reserved(q) for q in heldout) > len(heldout) // 4


def test_every_slot_has_a_reserved_and_a_shared_paraphrase():
    for slot in SLOTS:
        assert len(slot.questions) >= 3, slot.name
        assert all("{value}" in t or "{a_value}" in t for t in slot.intro + slot.update), slot.name
    for tool in TOOL_SLOTS:
        assert all(len(q) >= 3 for q in tool.questions.values()), tool.name


def test_bad_split_explains():
    with pytest.raises(ValueError, match="heldout"):
        agent_memory(seed=0, split="test")
