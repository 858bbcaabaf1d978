"""The InfLLM-style baseline: exact when everything is read, InfLLM's representatives, retrieval, bounded state;
the other block scores (Quest's bounds, mean keys, full attention) and sink-like tokens left out."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compare_chunks import CHUNK_SIZE, build_stream, make_chunks
from compare_infllm import (BlockMemory, InfLLM, InfLLMConfig, attention_mass, bound_scores, grouped_attention,
                            key_bounds, mean_key, representative_keys, vote_ranking)
from compare_systems import INFLLM_MODES, SYSTEMS
from compare_workloads import QA, Workload
from hsa_memory.model import get_preset
from hsa_memory.model.loading import load_model
from hsa_memory.model.modeling import apply_rope

QUESTION = "What is the combination of my bike lock?"

CONVERSATION = [
    ("user", "I spent the weekend repainting the kitchen a pale green and fixing the squeaky cabinet doors. "
             "The hinges needed oil and two screws were loose."),
    ("assistant", "That sounds like a productive weekend. Pale green is a calm colour for a kitchen, and oiling "
                  "the hinges usually fixes the squeak for months."),
    ("user", "By the way, the combination of my bike lock is 4729. Please remember it for me."),
    ("assistant", "Got it, I will remember that your bike lock combination is 4729."),
    ("user", "Tomorrow I want to bake sourdough bread. The starter has been bubbling nicely since Tuesday and "
             "smells a bit sour, like yogurt."),
    ("assistant", "A lively starter is a good sign. Feed it about eight hours before mixing, and let the dough "
                  "rise slowly in a cool place overnight."),
    ("user", "My neighbour's dog barked all night again, so I barely slept. I think I will talk to them politely "
             "this evening about keeping him inside after ten."),
    ("assistant", "A friendly conversation is a good first step. You could also suggest a quiet hour and offer "
                  "to help if the dog is anxious at night."),
    ("user", "The train to work was late three times this week. I am thinking about cycling instead when the "
             "weather gets warmer in spring."),
    ("assistant", "Cycling could be a nice change. Check the route for bike lanes first and keep a rain jacket "
                  "at the office for surprise showers."),
    ("user", "We finally booked the summer holiday: two weeks in a small village in the mountains, with long "
             "walks and a lake nearby."),
    ("assistant", "Lovely choice. Mountain villages are quiet in summer evenings; pack layers, because it gets "
                  "cold after sunset even in July."),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as the benchmark's workers run (and the shared CPU prefers); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def messages(pairs):
    return [{"id": f"m{i}", "role": role, "content": content, "time": None} for i, (role, content) in enumerate(pairs)]


def full_attention_logits(reader, infllm, stream_ids, question):
    """The plain reader over [system turn, stream, question turn]: full causal attention, last token's logits."""
    ids = infllm.head_ids + list(stream_ids) + infllm.question_ids(question)
    with torch.no_grad():
        hidden = reader.model.model(torch.tensor([ids]), torch.arange(len(ids)), use_hsa=False)
        return reader.model.lm_head(hidden[0, -1])


# ---- pure pieces ----------------------------------------------------------------------------------

def test_vote_ranking_orders_by_votes_then_reciprocal_rank():
    selections = {(0, 0): [5, 2], (0, 1): [2, 9], (1, 0): [9, 5], (1, 1): [7, 3]}
    # 5, 2 and 9 have two votes each; 5 and 9 have 1 + 1/2, 2 has 1/2 + 1; 7 beats 3 on rank
    assert vote_ranking(selections) == [2, 5, 9, 7, 3]
    assert vote_ranking({}) == []


def test_grouped_attention_matches_sdpa_and_counts_received_attention():
    torch.manual_seed(0)
    T, S, H, HK, D = 5, 9, 6, 2, 8
    q, k, v = torch.randn(T, H, D), torch.randn(S, HK, D), torch.randn(S, HK, D)
    visible = torch.ones(T, S, dtype=torch.bool).tril(S - T)
    visible[:, 1] = False  # a hole, as a window makes
    out, received = grouped_attention(q, k, v, visible)
    expected = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                              attn_mask=visible, enable_gqa=True)[0].transpose(0, 1)
    torch.testing.assert_close(out, expected.reshape(T, H * D), atol=1e-5, rtol=1e-5)
    logits = torch.einsum("thd,shd->hts", q, k.repeat_interleave(H // HK, 1)) * D ** -0.5
    probs = torch.softmax(logits.masked_fill(~visible, float("-inf")), -1)
    torch.testing.assert_close(received, probs.view(HK, H // HK, T, S).sum((1, 2)))
    assert received[:, 1].abs().max() == 0 and torch.allclose(received.sum(), torch.tensor(float(H * T)))


def test_representative_keys_are_the_most_attended_tokens_of_the_block():
    S, HK, D = 8, 2, 4
    keys = torch.arange(S * HK * D, dtype=torch.float32).view(S, HK, D)
    received = torch.zeros(HK, S)
    received[0, [6, 1, 3]] = torch.tensor([3.0, 2.0, 1.0])
    received[1, [0, 7]] = torch.tensor([5.0, 4.0])
    reps = representative_keys(keys, received, 2)
    assert reps.shape == (HK, 2, D)
    torch.testing.assert_close(reps[0], keys[[6, 1], 0])  # KV head 0's own best two, best first
    torch.testing.assert_close(reps[1], keys[[0, 7], 1])


# ---- a tiny random model: fast checks of the mechanism ----------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("tiny"), sliding_window=None, attn_sinks=False)
    return load_model(config, checkpoint=None)


def random_stream(n, seed=0):
    return torch.randint(100, 40_000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_tiny_reading_every_block_is_full_causal_attention(tmp_path, tiny):
    stream = random_stream(450)
    infllm = InfLLM(tiny, InfLLMConfig(piece=100, window=1024, local=64, top_k=8, storage="float32"))
    memory = infllm.ingest(stream, tmp_path / "mem")
    initial, local_start, lo, hi = infllm.layout(len(stream))
    assert (initial, lo) == (64, 1) and hi - lo == 5 and local_start == 384  # 5 candidates, all read at K = 8
    expected = full_attention_logits(tiny, infllm, stream, QUESTION)
    state = infllm.prefill(memory, QUESTION)
    torch.testing.assert_close(state.logits, expected, atol=1e-4, rtol=1e-4)
    assert state.position == len(infllm.head_ids) + len(stream) + len(infllm.question_ids(QUESTION))
    assert all(sorted(blocks) == list(range(lo, hi)) for blocks in state.selections.values())
    # reading fewer blocks than there are is not the same attention (the check above is not vacuous)
    fewer = InfLLM(tiny, dataclasses.replace(infllm.config, top_k=2)).prefill(memory, QUESTION)
    assert (fewer.logits - expected).abs().max() > 1e-3
    assert all(len(blocks) == 2 and lo <= min(blocks) and max(blocks) < hi for blocks in fewer.selections.values())
    assert fewer.position == state.position - 3 * CHUNK_SIZE  # compact positions: no gap for the unread blocks


@torch.no_grad()
def keys_and_attention(layer, hidden, cos, sin, H, HK, D):
    """A decoder layer's pre-RoPE keys (T, HK, D) and full causal attention probabilities (H, T, T), computed
    from its own modules in the plainest way."""
    x = layer.input_layernorm(hidden)
    q = apply_rope(layer.self_attn.q_proj(x).view(1, -1, H, D), cos, sin)[0]
    k_pre = layer.self_attn.k_proj(x).view(-1, HK, D)
    k = apply_rope(k_pre[None], cos, sin)[0]
    logits = torch.einsum("thd,shd->hts", q, k.repeat_interleave(H // HK, 1)) * D ** -0.5
    causal = torch.ones(logits.shape[1:], dtype=torch.bool).tril()
    return k_pre, torch.softmax(logits.masked_fill(~causal, float("-inf")), -1)


def test_tiny_representatives_are_infllms_most_attended_tokens(tmp_path, tiny):
    """With a window over the whole stream, each block's representatives are the tokens that the stream's
    queries attend to most under full causal attention (recomputed here independently), per KV head."""
    stream = random_stream(300, seed=1)
    infllm = InfLLM(tiny, InfLLMConfig(piece=70, window=1024, local=64, reps=3, storage="float32"))
    memory = infllm.ingest(stream, tmp_path / "mem")
    h, initial = len(infllm.head_ids), 64
    ids = infllm.head_ids + stream
    inputs = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
             for _, layer in infllm.decoder]
    with torch.no_grad():
        tiny.model.model(torch.tensor([ids]), torch.arange(len(ids)), use_hsa=False)
    for hook in hooks:
        hook.remove()
    cos, sin = tiny.model.model.rotary(torch.arange(len(ids)))
    HK, checked = infllm.HK, 0
    for layer, ((_, module), hidden) in enumerate(zip(infllm.decoder, inputs)):
        k_pre, probs = keys_and_attention(module, hidden, cos, sin, infllm.H, HK, infllm.D)
        # attention received from the stream's queries after the initial tokens, summed over each KV group's heads
        received = probs[:, h + initial:].reshape(HK, infllm.H // HK, -1, len(ids)).sum((1, 2))
        for block in range(1, len(stream) // 64):
            cols = slice(h + block * 64, h + block * 64 + 64)
            for head in range(HK):
                expected = k_pre[cols][received[head, cols].topk(3).indices, head]
                stored = torch.from_numpy(np.array(memory.reps[layer, block, head]))
                torch.testing.assert_close(stored, expected, atol=1e-4, rtol=1e-4)
                checked += 1
    assert checked == len(infllm.decoder) * 3 * HK
    assert not np.array(memory.reps[:, 0]).any()  # the initial block is read always: never a candidate


def test_tiny_ingest_keeps_a_bounded_tail_and_writes_what_it_keeps(tmp_path, tiny):
    stream = random_stream(3000, seed=2)
    config = InfLLMConfig(piece=128, window=128, local=128, top_k=3)
    infllm = InfLLM(tiny, config)
    memory = infllm.ingest(stream, tmp_path / "mem")
    # RAM holds the initial tokens and a window-sized tail, not the stream
    assert 0 < infllm.peak_tail <= config.window + config.piece + 2 * CHUNK_SIZE
    assert all(isinstance(kv, np.memmap) for kv in memory.kv) and isinstance(memory.reps, np.memmap)
    layers, HK, D, L = len(infllm.decoder), infllm.HK, infllm.D, len(stream)
    assert memory.kv[0].shape == (2, HK, L, D) and memory.kv[0].dtype == np.float16
    h = len(infllm.head_ids)
    expected = 2 * (layers * 2 * HK * L * D + layers * 2 * HK * h * D + layers * (L // 64) * HK * config.reps * D)
    files = sorted(p.name for p in memory.folder.iterdir())
    assert files == sorted([f"kv{i:02d}.bin" for i in range(layers)] + ["head.bin", "reps.bin", "ids.npy", "meta.json"])
    assert expected < memory.nbytes() < expected + 16_000  # K/V + representatives + ids (4 B/token) + meta
    assert memory.ids.tolist() == stream
    state = infllm.prefill(memory, QUESTION)
    _, local_start, lo, hi = infllm.layout(L)
    assert 128 <= L - local_start < 192 and (lo, hi) == (1, local_start // 64)  # the local window starts on a block
    # bounded context: system turn, initial block, K blocks, local window, question
    assert state.position == h + 64 + 3 * 64 + L - local_start + len(infllm.question_ids(QUESTION))
    assert all(len(blocks) == 3 and lo <= min(blocks) and max(blocks) < hi for blocks in state.selections.values())
    # reopened from disk, the memory answers the same
    again = infllm.prefill(BlockMemory(memory.folder), QUESTION)
    torch.testing.assert_close(again.logits, state.logits)


def test_config_and_reader_are_checked(tiny, tmp_path):
    windowed = load_model(get_preset("tiny"), checkpoint=None)
    with pytest.raises(ValueError, match="full-attention"):
        InfLLM(windowed)
    with pytest.raises(ValueError, match="storage"):
        InfLLM(tiny, InfLLMConfig(storage="int8"))
    with pytest.raises(ValueError, match="empty"):
        InfLLM(tiny).ingest([], tmp_path / "empty")


# ---- the real base reader --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base():
    from compare_readers import load_base_reader

    return load_base_reader("cpu")


@pytest.mark.slow
def test_real_reader_reading_every_block_is_full_causal_attention(tmp_path, base):
    stream = build_stream(messages(CONVERSATION), base.tokenizer).ids
    config = InfLLMConfig(piece=160, window=1024, local=64, top_k=8)
    _, _, lo, hi = InfLLM(base, config).layout(len(stream))
    assert 300 < len(stream) < 1024 and hi - lo >= 4
    expected = None
    for storage, atol in (("float32", 1e-3), ("float16", 3e-2)):  # float16: the benchmark's storage
        infllm = InfLLM(base, dataclasses.replace(config, storage=storage))
        memory = infllm.ingest(stream, tmp_path / storage)
        if expected is None:
            expected = full_attention_logits(base, infllm, stream, QUESTION)
        state = infllm.prefill(memory, QUESTION)
        torch.testing.assert_close(state.logits, expected, atol=atol, rtol=0)
        assert state.logits.argmax() == expected.argmax()


PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "


@pytest.mark.slow
@pytest.mark.parametrize("pieces, depth", [(16, 5), (16, 11)])
def test_real_reader_retrieves_the_passkey_block_first(tmp_path, base, pieces, depth):
    """InfLLM's own showcase: a pass key in repeated filler. The question's queries, through the representative
    keys, rank a block holding the key first among the 4 candidates (K = 2)."""
    parts = [PASSKEY_FILLER] * pieces
    parts.insert(depth, "The pass key is 71432. Remember it. 71432 is the pass key. ")
    content = ("There is important info hidden inside a lot of irrelevant text. Find it and memorize it. "
               + "".join(parts))
    stream = build_stream(messages([("user", content)]), base.tokenizer).ids
    chunks = make_chunks(stream, base.tokenizer)
    needle = {c.position for c in chunks if "71432" in c.text or "pass key" in c.text}
    infllm = InfLLM(base, InfLLMConfig(piece=256, window=512, local=64, top_k=2))
    _, _, lo, hi = infllm.layout(len(stream))
    assert hi - lo >= 3 and needle <= set(range(lo, hi))
    memory = infllm.ingest(stream, tmp_path / "mem")
    ranked = infllm.retrieve(memory, "What is the pass key?", 8)
    assert ranked[0] in needle and set(ranked) <= set(range(lo, hi))


@pytest.mark.slow
def test_real_system_round_trip(tmp_path, base, monkeypatch):
    import compare_systems

    monkeypatch.setattr(compare_systems, "load_base_reader", lambda device="cpu": base)
    system = compare_systems.make_system("infllm", tmp_path, "cpu", top_k=2)
    assert system.name == "infllm" and system.state_where == "disk"
    system.infllm = InfLLM(base, InfLLMConfig(local=128, top_k=2))  # a short local window: blocks to retrieve
    workload = Workload("agent_memory", 256, 0, 0, messages(CONVERSATION[:8]), [QA(QUESTION, "4729", [1], "static")])
    seconds = system.ingest(workload)
    assert seconds > 0
    tokens = len(build_stream(workload.messages, base.tokenizer).ids)
    _, _, lo, hi = system.infllm.layout(tokens)
    retrieved = system.retrieve(QUESTION, 8)
    assert retrieved and all(isinstance(b, int) and lo <= b < hi for b in retrieved)
    reply = system.answer(QUESTION, 8)
    assert isinstance(reply, str) and reply.strip()
    size = system.state_bytes()
    assert size == sum(p.stat().st_size for p in system.path.iterdir())
    kv = 30 * 3 * 64 * 2 * 2  # bytes per token: layers × KV heads × dims × (K, V) × float16
    least = kv * (tokens + len(system.infllm.head_ids))  # the stream's and the system turn's K/V
    assert least < size < least + 800 * tokens + 4096  # + representatives (720 B/token), ids, meta
    system.close()


# ---- other block scores (score="quest" / "mean" / "attn"): the bound -----------------------------

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


# ---- other block scores: the tiny model, the whole mechanism ----------------------------------------

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
