"""The base model's dialogue corpus: its file format, its safety filter, and the batched writer."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import zstandard

from hsa_memory.model.config import get_preset
from hsa_memory.model.generation import generate
from hsa_memory.model.modeling import HSAForCausalLM
from hsa_memory.model.tokenizer import load_tokenizer
from hsa_memory.training.data.dialogue import (TOPICS, DialogueCorpusError, Exchange, load_dialogues, looks_personal,
                                               save_dialogues, split_exchanges)
from hsa_memory.training.write_dialogue import (clean_reply, clean_user_message, generate_batch, generate_bucketed,
                                                sample_rows, write_exchanges)


def test_round_trip_keeps_every_exchange(tmp_path):
    exchanges = [Exchange("How do tides work?", "The moon's pull raises the sea.", "how tides work"),
                 Exchange("Any tips for knitting?", "Start with a simple scarf — “garter stitch”.", "knitting")]
    path = tmp_path / "d.jsonl.zst"
    assert save_dialogues(path, exchanges, {"seed": 3}) == 2
    assert load_dialogues(path) == exchanges
    assert not path.with_name(path.name + ".tmp").exists()


def _write(path, text: str) -> None:
    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))


@pytest.mark.parametrize("body", [
    "",                                                                  # empty
    '{"format": 2, "kind": "hsa-memory dialogue"}\n{"user": "a", "assistant": "b"}',  # unknown format
    '{"format": 1, "kind": "hsa-memory dialogue"}\n',                     # no exchanges
    '{"format": 1, "kind": "hsa-memory dialogue"}\n{"user": "hi", "assistant": 3}',   # wrong type
    '{"format": 1, "kind": "hsa-memory dialogue"}\n{"user": " ", "assistant": "b"}',  # blank field
    '{"format": 1, "kind": "hsa-memory dialogue"}\n["user", "assistant"]',            # not an object
    '{"format": 1, "kind": "hsa-memory dialogue"}\n{"user": "hi", "assist',           # truncated line
])
def test_malformed_corpora_raise_a_typed_error(tmp_path, body):
    path = tmp_path / "bad.jsonl.zst"
    _write(path, body)
    with pytest.raises(DialogueCorpusError):
        load_dialogues(path)


def test_damaged_or_missing_files_raise_a_typed_error(tmp_path):
    good = tmp_path / "good.jsonl.zst"
    save_dialogues(good, [Exchange("How do bees make honey?", "From nectar, which they dry in the comb.")])
    truncated = tmp_path / "truncated.jsonl.zst"
    truncated.write_bytes(good.read_bytes()[:-7])
    garbage = tmp_path / "garbage.jsonl.zst"
    garbage.write_bytes(b"\x00\xff binary, not zstd" * 10)
    latin = tmp_path / "latin.jsonl.zst"
    latin.write_bytes(zstandard.ZstdCompressor().compress("caf\xe9".encode("latin-1")))
    for path in (truncated, garbage, latin, tmp_path / "missing.jsonl.zst"):
        with pytest.raises(DialogueCorpusError):
            load_dialogues(path)


@pytest.mark.parametrize("text", [
    "My sister just moved to Porto, any tips for visiting?", "I live in Leeds and it rains a lot.",
    "I'm from Chile originally.", "My dog Rex loves the park.", "Our flight is at 10:45.",
    "I work at a bakery, how do I make bread rise?", "It was my birthday in March.", "My new car is red.",
])
def test_personal_statements_are_flagged(text):
    assert looks_personal(text)


@pytest.mark.parametrize("text", [
    "How do tides work?", "What's a good way to start learning the guitar?", "Why do leaves change colour?",
    "Can you tell me a fun fact about octopuses?", "Any advice for sleeping better?",
])
def test_general_questions_pass(text):
    assert not looks_personal(text)


def test_user_messages_are_cleaned_and_kept_on_topic():
    assert clean_user_message('"How do bees make honey?"\nExtra line', "how bees make honey") == \
        "How do bees make honey?"
    assert clean_user_message("Question: Why is the sky blue?", "why the sky is blue") == "Why is the sky blue?"
    assert clean_user_message("What's that you're asking?", "how airplanes fly") is None  # about the chat
    assert clean_user_message("How do I start knitting?", "volcanoes") is None  # off the topic
    assert clean_user_message("How do volcanoes", "volcanoes") is None  # unfinished
    assert clean_user_message("", "volcanoes") is None
    # a framed message keeps only what is quoted; the frame's words do not count as talk about the chat
    assert clean_user_message('A student asks: "Why do volcanoes erupt?"', "volcanoes") == "Why do volcanoes erupt?"
    assert clean_user_message('A curious person might ask, “How do bees make honey?”', "how bees make honey") == \
        "How do bees make honey?"
    assert clean_user_message('The user asks: "Can you, as an AI, explain volcanoes?"', "volcanoes") is None
    # quotes inside a bare message are part of it
    assert clean_user_message('What does "lava" mean for volcanoes?', "volcanoes") == 'What does "lava" mean for volcanoes?'


def test_replies_are_finished_or_cut_to_a_sentence():
    assert clean_reply("Tides follow the moon.", True) == "Tides follow the moon."
    assert clean_reply("Tides follow the moon. The sun helps a little. And then the", False) == \
        "Tides follow the moon. The sun helps a little."
    assert clean_reply("and then the", False) is None
    assert clean_reply("Ok.", True) is None


def test_split_holds_out_whole_topics():
    exchanges = [Exchange("q?", "a.", topic) for topic in TOPICS]
    train, held = split_exchanges(exchanges, "train"), split_exchanges(exchanges, "heldout")
    assert len(train) + len(held) == len(TOPICS) and held
    assert not {e.topic for e in train} & {e.topic for e in held}
    with pytest.raises(ValueError):
        split_exchanges(exchanges, "dev")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("tiny"), sliding_window=None, attn_sinks=False)
    model = HSAForCausalLM(config).eval()
    return SimpleNamespace(model=model, tokenizer=load_tokenizer(), model_id="tiny")


def test_batched_greedy_equals_one_row_at_a_time(tiny):
    """Rows batched together must see exactly what they would see alone (no padding, no leaks)."""
    prompts = torch.randint(100, 40000, (4, 9), generator=torch.Generator().manual_seed(1))
    stops = [tiny.model.config.im_end_token_id]
    batched = generate_batch(tiny.model, prompts, 12, stops)
    for row, (tokens, _) in zip(prompts, batched):
        alone = list(generate(tiny.model, row.tolist(), max_new_tokens=12, stop_ids=stops))
        assert tokens == alone


def test_sampling_follows_the_nucleus():
    logits = torch.tensor([[5.0, 4.9, -10.0, -10.0]]).repeat(200, 1)
    picks = sample_rows(logits, 1.0, 0.9, torch.Generator().manual_seed(0))
    assert set(picks.tolist()) <= {0, 1} and len(set(picks.tolist())) == 2
    assert sample_rows(logits, 0.0, 1.0, None).tolist() == [0] * 200


def test_buckets_return_results_in_prompt_order(tiny):
    prompts = [[101, 102, 103], [201, 202], [301, 302, 303], [401]]
    together = generate_bucketed(tiny, prompts, 5, batch_size=2, temperature=0.0, top_p=1.0, seed=0)
    alone = [generate_bucketed(tiny, [p], 5, batch_size=1, temperature=0.0, top_p=1.0, seed=0)[0] for p in prompts]
    assert together == alone


def test_write_exchanges_is_deterministic_and_filters(tiny):
    first, stats = write_exchanges(tiny, 6, seed=4, batch_size=4, progress=False)
    again, _ = write_exchanges(tiny, 6, seed=4, batch_size=4, progress=False)
    assert first == again
    assert stats["asked"] == 6
    assert stats["kept"] == len(first) == 6 - stats["unusable_user"] - stats["personal_user"] - stats["unusable_reply"]
    for exchange in first:
        assert not looks_personal(exchange.user)


# ---- the corpus in agent histories -----------------------------------------------------------------

def _exchanges(n: int = 40) -> list[Exchange]:
    return [Exchange(f"Could you explain something about {TOPICS[i]} number {chr(65 + i % 26)}?",
                     f"Gladly: here is a short note on {TOPICS[i]}.", TOPICS[i]) for i in range(n)]


def test_agent_histories_mix_in_written_dialogue_and_skip_personal_messages():
    from hsa_memory.training.data.agent_memory import agent_memory

    personal = Exchange("My sister lives in Porto, what should I see there?", "The river front.", TOPICS[0])
    corpus = _exchanges() + [personal] * 50
    example = agent_memory(3, 4096, dialogues=corpus)
    plain = agent_memory(3, 4096)
    users = {m.content for m in example.messages if m.role == "user"}
    assert users & {e.user for e in corpus[:40]}, "written dialogue never used"
    assert personal.user not in users
    # the questions and answers are the same facts either way: only the filler changes
    assert [(q.text, q.answer) for q in example.questions] == [(q.text, q.answer) for q in plain.questions]


def test_sources_load_the_corpus_by_split(tmp_path):
    from hsa_memory.training.data.mix import Sources

    path = tmp_path / "d.jsonl.zst"
    save_dialogues(path, _exchanges(len(TOPICS)))
    train = Sources.from_corpora("train", fallback=True, dialogues=path).dialogues
    held = Sources.from_corpora("heldout", fallback=True, dialogues=path).dialogues
    assert train and held and not {e.topic for e in train} & {e.topic for e in held}
    with pytest.raises(DialogueCorpusError):
        Sources.from_corpora("train", fallback=True, dialogues=tmp_path / "missing.jsonl.zst")


def test_unknown_filler_is_refused():
    from hsa_memory.training.tasks import sources

    with pytest.raises(ValueError, match="unknown filler"):
        sources("wikipedia", "train")
