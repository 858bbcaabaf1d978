"""Scenarios: causality; no token reads its own open chunk; sparse HSA with K ≥ visible chunks equals
a dense reference of the same formula; gradients reach landmarks and retrieval queries through the
fusion weights; zero-initialised HSA is the identity; encode_chunks in pieces equals one shot; reading
the same chunks from an external memory equals the training path; cached decoding equals a full pass."""
import pytest
import torch

from hsa_memory.model import HSAForCausalLM, TensorMemory, get_preset
from hsa_memory.model.generation import new_caches
from hsa_memory.model.memory import SequenceRouter
from hsa_memory.model.modeling import HSALayer


def test_forward_is_fast_and_finite(tiny_model):
    ids = torch.randint(0, 49152, (2, 300))
    out = tiny_model(ids, labels=ids)
    assert out.logits.shape == (2, 300, 49152)
    assert torch.isfinite(out.loss)


def test_causality(tiny_model):
    torch.manual_seed(1)
    ids = torch.randint(0, 49152, (1, 320))
    for t in (0, 63, 64, 130, 250):
        changed = ids.clone()
        changed[:, t + 1:] = torch.randint(0, 49152, (1, 320 - t - 1))
        a, b = tiny_model(ids).logits, tiny_model(changed).logits
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-5)
        if t < 319:
            assert (a[:, t + 1:] - b[:, t + 1:]).abs().max() > 1e-3


def test_no_token_retrieves_its_open_chunk():
    torch.manual_seed(0)
    B, C, S, HK, R, D = 1, 5, 64, 2, 8, 4
    router = SequenceRouter(torch.randn(B, C, HK * R), torch.randn(B, C * S, HK, D), torch.randn(B, C * S, HK, D), S)
    positions = torch.arange(C * S)
    _, idx = router.route(torch.randn(B, C * S, HK, R), 8, positions, None)
    own_chunk = (positions // S).view(1, -1, 1, 1)
    assert bool(((idx < own_chunk) | (idx == -1)).all())
    # every visible chunk is taken when K ≥ visible, none is taken before the first chunk closes
    assert bool((idx[:, :S] == -1).all())
    assert sorted(idx[0, 3 * S, 0].tolist()) == [-1] * 5 + [0, 1, 2]


def dense_hsa(layer: HSALayer, hidden, landmarks, keys, values, S):
    """Every visible chunk, fusion softmax over all of them (slot bias by score rank)."""
    B, T, d = hidden.shape
    normed = layer.input_layernorm(hidden)
    HK, Rh = layer.retrieval.kv_heads, layer.retrieval.head_dim
    rq = layer.retrieval.q_proj(normed).view(B, T, HK, Rh) * Rh ** -0.5
    q = layer.q_norm(layer.q_proj(normed).view(B, T, layer.num_heads, layer.head_dim))
    C = landmarks.shape[1]
    group = layer.num_heads // HK
    out = torch.zeros(B, T, layer.num_heads, layer.head_dim)
    for t in range(T):
        visible = t // S
        if visible == 0:
            continue
        for g in range(HK):
            scores = rq[0, t, g] @ landmarks[0, :visible].view(visible, HK, Rh)[:, g].T
            order = torch.argsort(scores, descending=True)
            biased = scores.clone()
            biased[order] = scores[order] + layer.retrieval.slot_bias[:visible]
            w = torch.softmax(biased, -1)
            for h in range(g * group, (g + 1) * group):
                for j in range(visible):
                    k = keys[0, j * S:(j + 1) * S, g]
                    v = values[0, j * S:(j + 1) * S, g]
                    p = torch.softmax(q[0, t, h] @ k.T / layer.head_dim ** 0.5, -1)
                    out[0, t, h] += w[j] * (p @ v)
    return hidden + layer.o_proj(out.reshape(B, T, -1))


def test_sparse_equals_dense_when_topk_covers_all(tiny_model):
    torch.manual_seed(3)
    config = tiny_model.config
    layer = tiny_model.model.layers[config.hsa_layer_indices[0]]
    S, C = config.chunk_size, 3
    T = C * S + 17  # 3 full chunks seen by the last tokens; topk must cover them
    layer.retrieval.topk = 3
    layer.retrieval.slot_bias.data = torch.randn(3)
    landmarks = torch.randn(1, C, config.retrieval_dim)
    keys = torch.randn(1, C * S, config.hsa_kv_heads, config.hsa_head_dim)
    values = torch.randn(1, C * S, config.hsa_kv_heads, config.hsa_head_dim)
    hidden = torch.randn(1, T, config.hidden_size)
    router = SequenceRouter(landmarks, keys, values, S)
    sparse = layer(hidden, router, torch.arange(T))
    dense = dense_hsa(layer, hidden, landmarks, keys, values, S)
    torch.testing.assert_close(sparse, dense, rtol=1e-4, atol=1e-4)


def test_gradients_reach_landmarks_and_retrieval_queries(tiny_model):
    tiny_model.train()
    ids = torch.randint(0, 49152, (1, 256))
    tiny_model(ids, labels=ids, gumbel_seed=7).loss.backward()
    encoder = tiny_model.model.chunk_encoder
    for index in tiny_model.config.hsa_layer_indices:
        grad = tiny_model.model.layers[index].retrieval.q_proj.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    for param in (encoder.landmark_proj.weight, encoder.cls, encoder.k_proj.weight, encoder.v_proj.weight):
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_zero_initialised_hsa_is_identity():
    torch.manual_seed(5)
    config = get_preset("tiny")
    with_hsa = HSAForCausalLM(config).eval()
    no_hsa_config = get_preset("tiny")
    no_hsa_config.layer_types = [t for t in config.layer_types if t == "swa"]
    plain = HSAForCausalLM(no_hsa_config).eval()
    result = plain.load_state_dict(_renumber(with_hsa, config), strict=False)
    assert not result.missing_keys
    ids = torch.randint(0, 49152, (1, 200))
    torch.testing.assert_close(with_hsa(ids).logits, plain(ids).logits, rtol=0, atol=0)


def _renumber(model, config):
    """The HSA model's state with HSA layers and encoder dropped and SWA layers renumbered."""
    swa = [i for i, t in enumerate(config.layer_types) if t == "swa"]
    state = {}
    for name, value in model.state_dict().items():
        if name.startswith("model.layers."):
            index = int(name.split(".")[2])
            if index not in swa:
                continue
            name = name.replace(f"model.layers.{index}.", f"model.layers.{swa.index(index)}.", 1)
        elif name.startswith("model.chunk_encoder"):
            continue
        state[name] = value
    return state


@pytest.mark.parametrize("splits", [[300], [1, 62, 1, 64, 100, 72], [64, 64, 64, 108], [200, 100]])
def test_encode_chunks_in_pieces_equals_one_shot(tiny_model, splits):
    torch.manual_seed(2)
    ids = torch.randint(0, 49152, (300,))
    whole = tiny_model.encode_chunks(ids)
    state, landmarks, keys, tokens, start = None, [], [], [], 0
    for size in splits:
        encoded = tiny_model.encode_chunks(ids[start:start + size], state, block_tokens=37)
        state, start = encoded.state, start + size
        landmarks.append(encoded.memory.landmarks)
        keys.append(encoded.memory.keys)
        tokens.append(encoded.token_ids)
    torch.testing.assert_close(torch.cat(landmarks), whole.memory.landmarks, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat(keys), whole.memory.keys, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat(tokens), ids[:256].view(4, 64))
    assert state.position == 300 and state.pending_ids == ids[256:].tolist()


def test_encoder_chunks_match_training_path(tiny_model):
    ids = torch.randint(0, 49152, (1, 300))
    hidden = tiny_model.model.embed_tokens(ids)
    lower = list(enumerate(tiny_model.model.layers))[: tiny_model.config.num_lower_layers]
    mid = tiny_model.model.run_layers(hidden, lower, torch.arange(300))
    training = tiny_model.model.encode_sequence_chunks(mid)
    streamed = tiny_model.encode_chunks(ids[0]).memory
    torch.testing.assert_close(streamed.landmarks, training.landmarks, rtol=1e-5, atol=1e-5)


def test_external_memory_equals_training_path(tiny_model):
    torch.manual_seed(4)
    ids = torch.randint(0, 49152, (1, 300))
    memory = tiny_model.encode_chunks(ids[0]).memory
    external = TensorMemory(memory.landmarks, memory.keys, memory.values)
    training = tiny_model(ids).logits
    served = tiny_model(ids, memory=external).logits
    torch.testing.assert_close(served, training, rtol=1e-4, atol=1e-4)


def test_cached_decoding_equals_full_pass(tiny_model):
    torch.manual_seed(6)
    ids = torch.randint(0, 49152, (1, 200))
    memory = tiny_model.encode_chunks(ids[0]).memory
    external = TensorMemory(memory.landmarks, memory.keys, memory.values)
    full = tiny_model(ids, memory=external).logits
    caches = new_caches(tiny_model)
    pieces = []
    for start, stop in [(0, 90), (90, 91), (91, 150), (150, 200)]:
        hidden = tiny_model.model(ids[:, start:stop], torch.arange(start, stop), memory=external, caches=caches)
        pieces.append(tiny_model.lm_head(hidden))
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-4, atol=1e-4)


def test_external_memory_serves_positions_and_ids():
    """Forgotten chunks leave gaps: visibility follows stream positions, answers carry chunk ids."""
    landmarks = torch.randn(3, 4)
    kv = torch.randn(3, 64, 1, 2)
    memory = TensorMemory(landmarks, kv, kv, positions=torch.tensor([0, 2, 5]), chunk_ids=torch.tensor([10, 11, 12]))
    scores, ids = memory.topk(torch.randn(3, 1, 4), 3, torch.tensor([1, 3, 9]))
    assert sorted(ids[0, 0].tolist()) == [-1, -1, 10]
    assert sorted(ids[1, 0].tolist()) == [-1, 10, 11]
    assert sorted(ids[2, 0].tolist()) == [10, 11, 12]
    keys, _ = memory.kv(torch.tensor([12, 10]))
    assert torch.equal(keys, kv[[2, 0]])
