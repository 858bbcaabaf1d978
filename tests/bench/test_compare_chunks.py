"""Every system reads the chunks Memory ingest makes: same stream, same 64-token cuts, same texts."""
import dataclasses

import pytest
import torch

from compare_chunks import CHUNK_SIZE, build_stream, make_chunks
import compare_readers
from compare_readers import FullContext, decode_from, system_turn
from compare_workloads import QA, Workload, generate, parse_size, size_label
from hsa_memory.model import get_preset
from hsa_memory.model.generation import new_caches
from hsa_memory.model.loading import load_model

MESSAGES = [
    {"id": "m0", "role": "user", "content": "My sister Anna moved to Lisbon in May. " * 7},
    {"id": "m1", "role": "assistant", "content": "Noted: Anna lives in Lisbon now, since May."},
    {"id": "m2", "role": "tool", "content": "booking ref R-18592; seat 14C; gate B7 " * 9},
    {"id": "m3", "role": "user", "content": "Thanks! Remind me of the gate tomorrow. " * 5},
]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model(get_preset("tiny"), checkpoint=None)


def test_chunks_equal_the_memory_store(tmp_path, tiny):
    from hsa_memory import Memory

    with Memory(tmp_path / "mem", model=tiny) as mem:
        mem.extend([{"role": m["role"], "content": m["content"]} for m in MESSAGES])
        _, ids = mem.store.landmarks()
        stored = mem.store.chunks(ids)
        tokens = mem.stats()["tokens"]
    stream = build_stream(MESSAGES, tiny.tokenizer)
    assert len(stream.ids) == tokens
    full = make_chunks(stream.ids, tiny.tokenizer, include_open=False)
    assert len(full) == len(stored) == tokens // CHUNK_SIZE >= 4
    assert [c.position for c in full] == [c.position for c in stored]
    assert [c.text for c in full] == [c.text for c in stored]
    every = make_chunks(stream.ids, tiny.tokenizer)
    assert len(every) == len(full) + 1 and not every[-1].full and every[:-1] == full


def test_stream_spans_cover_each_turn(tiny):
    stream = build_stream(MESSAGES, tiny.tokenizer)
    starts = [stream.spans[m["id"]] for m in MESSAGES]
    assert starts[0][0] == 0 and starts[-1][1] == len(stream.ids)
    assert all(a[1] == b[0] for a, b in zip(starts, starts[1:]))
    text = tiny.tokenizer.decode(stream.ids[slice(*stream.spans["m1"])], skip_special_tokens=False)
    assert text == "<|im_start|>assistant\nNoted: Anna lives in Lisbon now, since May.<|im_end|>\n"


@pytest.mark.parametrize("task", ["agent_memory", "niah"])
def test_workload_evidence_chunks_hold_the_answer(tmp_path, tiny, task):
    workload = generate(task, 1024, questions=3, filler="fallback")
    assert len(workload.questions) == 3 and 800 <= workload.tokens <= 1200
    chunks = make_chunks(build_stream(workload.messages, tiny.tokenizer).ids, tiny.tokenizer)
    for qa in workload.questions:
        assert qa.evidence, qa
        # the answer starts in an evidence chunk; it may run on into the next one
        assert any(qa.answer in "".join(c.text for c in chunks[e:e + 2]) for e in qa.evidence), qa
    workload.save(tmp_path / "w.json")
    again = Workload.load(tmp_path / "w.json")
    assert again == workload and isinstance(again.questions[0], QA)


def test_sizes_parse_and_print():
    assert parse_size("8K") == 8192 and parse_size("1M") == 1 << 20 and parse_size("5000") == 5000
    assert [size_label(s) for s in (8192, 65536, 1 << 20, 5000)] == ["8K", "64K", "1M", "5000"]


@pytest.fixture(scope="module")
def reader(tiny):
    """The tiny model as a reader: no window, no sinks (what load_base_reader does to SmolLM2)."""
    config = dataclasses.replace(tiny.model.config, sliding_window=None, attn_sinks=False)
    torch.manual_seed(1)
    return load_model(config, checkpoint=None)


def test_full_context_prefix_cache_answers_like_a_fresh_prompt(reader):
    stream = build_stream(MESSAGES, reader.tokenizer)
    context = FullContext(reader, stream.ids, block=37)  # odd block: the prefill goes in pieces
    first = context.answer("Where does Anna live?", 6)
    context.answer("Which gate?", 6)
    assert context.answer("Where does Anna live?", 6) == first  # the cache came back unchanged
    turn = "<|im_start|>user\nWhere does Anna live?<|im_end|>\n<|im_start|>assistant\n"
    encode = lambda text: reader.tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    full = encode(system_turn()) + stream.ids + encode(turn)
    assert context.length == len(full) - len(encode(turn))
    assert decode_from(reader, new_caches(reader.model), full, 0, 6) == first


def test_full_context_keeps_the_most_recent_tokens(reader, monkeypatch):
    monkeypatch.setattr(compare_readers, "BASE_CONTEXT", 600)
    head = len(reader.tokenizer.encode(system_turn(), add_special_tokens=False).ids)
    ids = list(range(1000, 1900))
    context = FullContext(reader, ids, reserve=100)
    assert context.length == 600 - 100
    assert context.dropped == 900 - (500 - head)
    short = FullContext(reader, ids[:50], reserve=100)
    assert short.dropped == 0 and short.length == head + 50


def test_rag_excerpts_join_neighbouring_chunks_in_stream_order():
    from compare_systems import excerpts

    chunks = ["a0 ", "b1 ", "the code is 189", "0852. ", "e4 ", "f5 "]
    assert excerpts(chunks, [3, 0, 2, 5]) == ["a0 ", "the code is 1890852. ", "f5 "]
    assert excerpts(chunks, [4]) == ["e4 "] and excerpts(chunks, []) == []
