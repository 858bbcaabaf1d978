"""Task mixture: random access by index, weights, splits, LM segments, and corpus fallback."""
import collections

import pytest

from hsa_memory.training.data import corpora
from hsa_memory.training.data.mix import TASKS, Sources, TaskMixture, lm_segment
from hsa_memory.training.data.text import TextSource, estimate_tokens


def test_example_i_depends_only_on_seed_and_index():
    mixture = TaskMixture(target_tokens=800, seed=3)
    first = mixture.take(6)
    assert TaskMixture(target_tokens=800, seed=3).sample(4) == first[4]
    assert mixture.take(3, start=3) == first[3:]
    assert [e.metadata["mixture_index"] for e in first] == list(range(6))
    assert TaskMixture(target_tokens=800, seed=4).take(6) != first


def test_weights_choose_tasks():
    mixture = TaskMixture({"s_niah": 3, "lm": 1}, target_tokens=600)
    counts = collections.Counter(mixture.choose(i)[0] for i in range(2000))
    assert set(counts) == {"s_niah", "lm"}
    assert 0.7 < counts["s_niah"] / 2000 < 0.8


def test_every_task_generates_at_its_length():
    mixture = TaskMixture({t: 1 for t in TASKS}, target_tokens=[700, 1200], seed=1)
    seen = set()
    for i in range(40):
        example = mixture.sample(i)
        seen.add(example.task)
        render = example.to_text() if example.metadata.get("render") == "text" else example.to_chatml()
        n = estimate_tokens(render.text)
        assert abs(n - example.metadata["target_tokens"]) <= 0.03 * example.metadata["target_tokens"], example.task
        assert example.metadata["target_tokens"] in (700, 1200)
    assert seen == set(TASKS)


def test_train_and_heldout_never_share_a_seed():
    train = {TaskMixture(split="train").choose(i)[1] for i in range(500)}
    heldout = {TaskMixture(split="heldout").choose(i)[1] for i in range(500)}
    assert all(s % 2 == 0 for s in train) and all(s % 2 == 1 for s in heldout)


def test_task_kwargs_reach_the_generator():
    mixture = TaskMixture({"mq_niah": 1}, target_tokens=1500, task_kwargs={"mq_niah": {"num_pairs": 4, "num_queries": 1}})
    example = mixture.sample(0)
    assert len(example.metadata["needles"]) == 4 and len(example.questions) == 1


def test_lm_segment_is_plain_consecutive_text():
    source = TextSource(corpora.fallback_paragraphs(), name="fallback")
    example = lm_segment(seed=2, target_tokens=500, source=source)
    assert example.task == "lm" and example.questions == []
    text = example.to_text().text
    assert abs(estimate_tokens(text) - 500) <= 10
    assert text.split("\n\n")[1] in corpora.fallback_paragraphs()


def test_bad_mixtures_explain():
    with pytest.raises(ValueError, match="unknown tasks"):
        TaskMixture({"passkey": 1})
    with pytest.raises(ValueError, match="positive sum"):
        TaskMixture({"lm": 0})
    with pytest.raises(ValueError, match="split"):
        TaskMixture(split="valid")


def test_sources_fall_back_when_corpora_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HSA_MEMORY_CORPORA", str(tmp_path))
    monkeypatch.setattr(corpora, "_roots", lambda: [tmp_path / "nothing"])
    with pytest.raises(corpora.CorpusUnavailable):
        Sources.from_corpora()
    sources = Sources.from_corpora(fallback=True)
    assert sources.haystack.name == "fallback" and sources.glosses is None


@pytest.mark.skipif(set(corpora.available_corpora()) != set(corpora.CORPORA), reason="Debian corpora not available")
def test_heldout_lm_text_is_persuasion_and_train_excludes_it():
    persuasion = set(corpora.load_corpus("austen", split="heldout"))
    heldout = Sources.from_corpora("heldout")
    train = Sources.from_corpora("train")
    assert set(heldout.lm.paragraphs) == persuasion
    assert not persuasion & set(train.lm.paragraphs)
    assert not persuasion & set(train.haystack.paragraphs)
