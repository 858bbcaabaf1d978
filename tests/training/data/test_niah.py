"""NIAH generators: determinism, lengths, and needles where the question says they are.

Scenarios: same seed → identical example, other seeds differ; rendered lengths within 2% of the
target for several targets and both layouts; each needle occurs exactly once, in its evidence
message, near its depth; MQ-NIAH's queried keys are distinct needles; VT's answer follows the
chain through the text; self-copy's passage and prefix are unique; bad arguments explain.
"""
import re

import pytest

from hsa_memory.training.data.corpora import fallback_paragraphs
from hsa_memory.training.data.niah import mq_niah, s_niah, self_copy, variable_tracking
from hsa_memory.training.data.text import TextSource, estimate_tokens

GENERATORS = [s_niah, mq_niah, variable_tracking, self_copy]


def occurrences(example, text):
    return [m.id for m in example.messages for _ in range(m.content.count(text))]


@pytest.mark.parametrize("generate", GENERATORS)
def test_same_seed_same_example_other_seed_differs(generate):
    a, b, c = generate(seed=5, target_tokens=700), generate(seed=5, target_tokens=700), generate(seed=6, target_tokens=700)
    assert a == b
    assert a.to_dict() != c.to_dict()


@pytest.mark.parametrize("generate", GENERATORS)
@pytest.mark.parametrize("target", [600, 2048, 6000])
@pytest.mark.parametrize("layout", ["paragraphs", "single"])
def test_length_hits_target(generate, target, layout):
    example = generate(seed=target, target_tokens=target, layout=layout)
    n = estimate_tokens(example.to_chatml().text)
    assert n == example.metadata["n_tokens"]
    assert abs(n - target) <= max(8, 0.02 * target), (n, target)
    if layout == "single":
        assert len(example.messages) == 1


def test_length_with_a_tokenizer_object():
    class CharTokenizer:
        def encode(self, text):
            return list(text)

    example = s_niah(seed=1, target_tokens=3000, count_tokens=CharTokenizer())
    assert abs(len(example.to_chatml().text) - 3000) <= 60


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_s_niah_needle_once_in_evidence_at_depth(depth):
    example = s_niah(seed=11, target_tokens=4000, depth=depth)
    (question,) = example.questions
    (needle,) = example.metadata["needles"]
    assert occurrences(example, needle["text"]) == question.evidence_message_ids
    assert occurrences(example, question.answer) == question.evidence_message_ids
    assert needle["key"] in question.text and question.answer == needle["value"]
    assert abs(needle["actual_depth"] - depth) < 0.05


def test_s_niah_depth_orders_the_evidence():
    ids = [s_niah(seed=2, target_tokens=3000, depth=d).questions[0].evidence_message_ids[0] for d in (0.1, 0.5, 0.9)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_mq_niah_six_needles_two_queries():
    example = mq_niah(seed=4, target_tokens=3000)
    needles = example.metadata["needles"]
    assert len(needles) == 6 and len({n["key"] for n in needles}) == 6 and len({n["value"] for n in needles}) == 6
    assert len(example.questions) == 2 and example.questions[0].text != example.questions[1].text
    by_key = {n["key"]: n for n in needles}
    for question in example.questions:
        needle = by_key[question.metadata["key"]]
        assert question.answer == needle["value"]
        assert occurrences(example, question.answer) == question.evidence_message_ids == [needle["message_id"]]
    for needle in needles:
        assert len(occurrences(example, needle["text"])) == 1


STATEMENT = re.compile(r"VAR ([A-Z]{5}) = (VAR ([A-Z]{5})|\d+)\.")


@pytest.mark.parametrize("seed", range(5))
def test_variable_tracking_answer_follows_the_chain(seed):
    example = variable_tracking(seed=seed, target_tokens=2500, num_chains=3, num_hops=3)
    assignments = {}
    for message in example.messages:
        for name, rhs, ref in STATEMENT.findall(message.content):
            assert name not in assignments, "each variable is assigned once"
            # a reference must point at an already assigned variable
            assignments[name] = assignments[ref] if ref else rhs
    (question,) = example.questions
    value = question.metadata["value"]
    assert value in question.text
    equal = [name for name, v in assignments.items() if v == value]
    assert question.answer == ", ".join(equal) and len(equal) == 4
    holders = {m.id for m in example.messages for name in equal if f"VAR {name} =" in m.content}
    assert holders == set(question.evidence_message_ids)
    assert len(assignments) == 12


def test_self_copy_passage_and_prefix_are_unique():
    for seed in range(5):
        example = self_copy(seed=seed, target_tokens=2500, passage_tokens=48)
        (question,) = example.questions
        prefix = re.search(r'"(.*)"', question.text).group(1)
        assert question.answer.startswith(prefix)
        assert occurrences(example, question.answer) == question.evidence_message_ids
        assert len(occurrences(example, prefix)) == 1
        assert estimate_tokens(question.answer) <= 48
        assert question.metadata["actual_depth"] <= 0.35


def test_filler_source_is_used_and_needle_values_avoided():
    paragraphs = [f"Line {i} of the custom filler text says nothing much." for i in range(50)]
    example = s_niah(seed=3, target_tokens=1500, filler=paragraphs)
    text = example.to_chatml().text
    assert "custom filler" in text
    assert fallback_paragraphs()[0][:30] not in text


def test_text_source_and_count_tokens_together_are_refused():
    source = TextSource(fallback_paragraphs())
    with pytest.raises(ValueError, match="leave count_tokens=None"):
        s_niah(seed=0, filler=source, count_tokens=len)


def test_target_too_small_explains():
    with pytest.raises(ValueError, match="target_tokens=50 is below"):
        mq_niah(seed=0, target_tokens=50)


def test_bad_arguments_explain():
    with pytest.raises(ValueError, match="depth"):
        s_niah(seed=0, depth=1.5)
    with pytest.raises(ValueError, match="num_queries"):
        mq_niah(seed=0, num_pairs=2, num_queries=3)
    with pytest.raises(ValueError, match="layout"):
        s_niah(seed=0, layout="pages")
