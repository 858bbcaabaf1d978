"""The Quest block score of the InfLLM-style baseline (``compare_infllm``, score="quest"): the bound, the
assembly with every block read, a planted block found, sink-like tokens left out. Tiny model only: fast."""
import dataclasses

import numpy as np
import pytest
import torch

from compare_infllm import BlockMemory, InfLLM, InfLLMConfig, attention_mass, bound_scores, key_bounds, mean_key
from compare_systems import INFLLM_MODES, SYSTEMS
from hsa_memory.model import get_preset
from hsa_memory.model.loading import load_model
from hsa_memory.model.modeling import apply_rope

QUESTION = "What is the combination of my bike lock?"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("tiny"), sliding_window=None, attn_sinks=False)
    return load_model(config, checkpoint=None)


def random_stream(n, seed=0):
    return torch.randint(100, 40_000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def full_attention_logits(reader, infllm, stream_ids, question):
    ids = infllm.head_ids + list(stream_ids) + infllm.question_ids(question)
    with torch.no_grad():
        hidden = reader.model.model(torch.tensor([ids]), torch.arange(len(ids)), use_hsa=False)
        return reader.model.lm_head(hidden[0, -1])


# ---- the bound --------------------------------------------------------------------------------------

def test_bound_is_an_upper_bound_of_the_best_dot_product_and_tight_for_one_key():
    torch.manual_seed(0)
    N, S, HK, n, D = 12, 16, 3, 7, 32
    keys = torch.randn(N, S, HK, D) * torch.rand(1, 1, 1, D) * 3  # channels of unequal scale, as real keys
    queries = torch.randn(HK, n, D)
    bounds = torch.stack([key_bounds(keys[b]) for b in range(N)])  # (N, HK, 2, D)
    scores = bound_scores(queries, bounds)
    assert scores.shape == (HK, n, N)
    exact = torch.einsum("hnd,bshd->hnbs", queries, keys).amax(-1)  # max over each block's keys
    assert (scores >= exact - 1e-4).all()
    assert (scores > exact + 1e-3).any()  # a bound, not the max itself, for many keys
    single = torch.stack([key_bounds(keys[b, :1]) for b in range(N)])  # one key per block: min = max = key
    torch.testing.assert_close(bound_scores(queries, single), torch.einsum("hnd,bhd->hnb", queries, keys[:, 0]))


def test_key_bounds_leave_out_masked_tokens_unless_all_are():
    keys = torch.arange(4 * 1 * 2, dtype=torch.float32).view(4, 1, 2)  # tokens 0..3, one head, two channels
    keep = torch.tensor([False, True, True, False])
    torch.testing.assert_close(key_bounds(keys, keep)[0], torch.stack([keys[1, 0], keys[2, 0]]))
    torch.testing.assert_close(key_bounds(keys, torch.zeros(4, dtype=torch.bool)), key_bounds(keys))


def test_planted_block_aligned_with_the_query_ranks_first():
    torch.manual_seed(1)
    N, S, HK, n, D = 40, 64, 2, 5, 16
    keys = 0.3 * torch.randn(N, S, HK, D) + torch.randn(1, 1, HK, D)  # a direction shared by all keys, as real ones
    queries = torch.randn(HK, n, D)
    planted = 23
    # the block's keys point where the group's queries point (plus the same spread as every block)
    keys[planted] += 2 * torch.nn.functional.normalize(queries.mean(1), dim=-1)
    scores = bound_scores(queries, torch.stack([key_bounds(keys[b]) for b in range(N)]))
    means = torch.einsum("hnd,bhd->hnb", queries, torch.stack([mean_key(keys[b])[:, 0] for b in range(N)]))
    for reduced in (scores.amax(1), scores.mean(1), means.amax(1), means.mean(1)):
        assert reduced.argmax(-1).tolist() == [planted] * HK
    mass = attention_mass(queries, keys.permute(2, 0, 1, 3))
    assert mass.argmax(-1).tolist() == [planted] * HK
    torch.testing.assert_close(mass.sum(-1), torch.full((HK,), float(n)))  # each query's attention sums to 1


# ---- the tiny model: the whole mechanism --------------------------------------------------------------

@pytest.mark.parametrize("score, summary", [("quest", "bounds.bin"), ("mean", "means.bin"), ("attn", None)])
def test_tiny_reading_every_block_is_full_causal_attention_for_every_score(tmp_path, tiny, score, summary):
    stream = random_stream(450)
    infllm = InfLLM(tiny, InfLLMConfig(piece=100, window=1024, local=64, top_k=8, storage="float32", score=score))
    memory = infllm.ingest(stream, tmp_path / "mem")
    assert memory.score == score and memory.reps is None
    assert sorted(p.name for p in memory.folder.iterdir() if not p.name.startswith("kv")) == sorted(
        ([summary] if summary else []) + ["head.bin", "ids.npy", "meta.json"])
    _, _, lo, hi = infllm.layout(len(stream))
    expected = full_attention_logits(tiny, infllm, stream, QUESTION)
    state = infllm.prefill(memory, QUESTION)
    torch.testing.assert_close(state.logits, expected, atol=1e-4, rtol=1e-4)
    assert all(sorted(blocks) == list(range(lo, hi)) for blocks in state.selections.values())
    fewer = InfLLM(tiny, dataclasses.replace(infllm.config, top_k=2)).prefill(memory, QUESTION)
    assert (fewer.logits - expected).abs().max() > 1e-3
    with pytest.raises(ValueError, match="score"):  # a Quest memory is not read with InfLLM's score
        InfLLM(tiny, dataclasses.replace(infllm.config, score="repr")).prefill(memory, QUESTION)


def test_tiny_bounds_are_the_min_and_max_of_the_offset_rotated_keys(tmp_path, tiny):
    stream = random_stream(300, seed=1)
    infllm = InfLLM(tiny, InfLLMConfig(piece=70, window=128, local=64, storage="float32", score="quest"))
    memory = infllm.ingest(stream, tmp_path / "mem")
    cos, sin = tiny.model.model.rotary(torch.arange(64))
    for layer in (0, len(infllm.decoder) - 1):
        kv = torch.from_numpy(np.array(memory.kv[layer][0]))  # (HK, L, D) pre-RoPE keys
        for block in range(1, len(stream) // 64):
            keys = kv[:, block * 64: block * 64 + 64].permute(1, 0, 2)  # (S, HK, D)
            rotated = apply_rope(keys[None], cos, sin)[0]
            stored = torch.from_numpy(np.array(memory.bounds[layer, block]))
            torch.testing.assert_close(stored[:, 0], rotated.amin(0), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(stored[:, 1], rotated.amax(0), atol=1e-5, rtol=1e-5)
    assert not np.array(memory.bounds[:, 0]).any()  # the initial block is read always: never a candidate


def test_tiny_planted_bounds_are_read_by_every_layer_and_group(tmp_path, tiny):
    """A block whose keys span every direction (bounds ±big) beats every other block for any query: each
    (layer, KV group) reads it first and the vote ranking puts it first."""
    stream = random_stream(900, seed=3)
    infllm = InfLLM(tiny, InfLLMConfig(piece=256, window=256, local=128, top_k=3, score="quest"))
    memory = infllm.ingest(stream, tmp_path / "mem")
    _, _, lo, hi = infllm.layout(len(stream))
    planted = lo + (hi - lo) // 2
    bounds = np.array(memory.bounds)
    bounds[:, planted, :, 0], bounds[:, planted, :, 1] = -50.0, 50.0
    memory.bounds = bounds
    for reduce in ("max", "mean"):
        reader = InfLLM(tiny, dataclasses.replace(infllm.config, reduce=reduce))
        state = reader.prefill(memory, QUESTION)
        assert len(state.selections) == len(infllm.decoder) * infllm.HK
        assert all(blocks[0] == planted and len(blocks) == 3 for blocks in state.selections.values())
        assert reader.retrieve(memory, QUESTION, 8)[0] == planted
    # the unplanted memory reopened from disk: the planted block is not first everywhere by chance
    plain = infllm.prefill(BlockMemory(memory.folder), QUESTION)
    assert any(blocks[0] != planted for blocks in plain.selections.values())


def test_tiny_skip_sinks_leaves_punctuation_out_of_representatives_and_bounds(tmp_path, tiny):
    encode = lambda text: tiny.tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    newline, period, word = encode("\n")[0], encode(".")[0], encode(" the")[0]
    infllm = InfLLM(tiny, InfLLMConfig(piece=256, window=256, local=64, reps=4, skip_sinks=True, storage="float32"))
    stream = random_stream(256, seed=4)
    stream = [word if sink else token for token, sink in zip(stream, infllm.sink_like(stream).tolist())]
    stream[64:96] = [newline, period] * 16  # block 1: half sink-like
    sinkish = infllm.sink_like(stream[64:128])
    assert sinkish[:32].all() and not sinkish[32:].any()
    memory = infllm.ingest(stream, tmp_path / "repr")
    kv = np.array(memory.kv[0][0])  # (HK, L, D); layer 0's pre-RoPE keys depend on the token only
    for head in range(infllm.HK):
        for rep in np.array(memory.reps[0, 1, head]):  # block 1's representatives: no newline, no full stop
            assert min(np.abs(kv[head, 64] - rep).max(), np.abs(kv[head, 65] - rep).max()) > 1e-3
    quest = InfLLM(tiny, dataclasses.replace(infllm.config, score="quest"))
    memory = quest.ingest(stream, tmp_path / "quest")
    cos, sin = tiny.model.model.rotary(torch.arange(64))
    keys = torch.from_numpy(np.array(memory.kv[0][0][:, 64:128])).permute(1, 0, 2)
    rotated = apply_rope(keys[None], cos, sin)[0][32:]  # the block's tokens that are not sink-like
    stored = torch.from_numpy(np.array(memory.bounds[0, 1]))
    torch.testing.assert_close(stored[:, 0], rotated.amin(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stored[:, 1], rotated.amax(0), atol=1e-5, rtol=1e-5)


def test_quest_config_and_system_are_registered(tiny):
    with pytest.raises(ValueError, match="score"):
        InfLLM(tiny, InfLLMConfig(score="max"))
    with pytest.raises(ValueError, match="reduce"):
        InfLLM(tiny, InfLLMConfig(score="quest", reduce="sum"))
    assert {"infllm", "infllm-attn", "infllm-quest"} <= set(SYSTEMS)
    assert INFLLM_MODES["infllm"] == {"score": "repr"} and INFLLM_MODES["infllm-attn"] == {"score": "attn"}
    assert INFLLM_MODES["infllm-quest"]["score"] == "quest"
