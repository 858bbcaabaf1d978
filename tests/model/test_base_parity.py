"""Scenarios (slow, real weights): with HSA zero and a window covering the prompt, our logits equal
an independent implementation (transformers reading the same GGUF) within 1e-4 relative error;
greedy ChatML generation answers the capital of France; the q/k un-permutation is the inverse of
llama.cpp's; a missing or damaged base gives a clear error."""
import numpy as np
import pytest
import torch

from hsa_memory.model.generation import generate
from hsa_memory.model.tokenizer import render_chatml
from hsa_memory.model.weights import WeightsError, _unpermute_rows, find_default_gguf, read_base

pytestmark = pytest.mark.slow


def test_unpermute_inverts_llama_cpp_permutation():
    heads, head_dim, d_in = 3, 8, 5
    weight = np.random.default_rng(0).standard_normal((heads * head_dim, d_in))
    # llama.cpp's convert script: reshape(heads, 2, half, in).swapaxes(1, 2)
    permuted = weight.reshape(heads, 2, head_dim // 2, d_in).swapaxes(1, 2).reshape(weight.shape)
    assert np.array_equal(_unpermute_rows(permuted, heads), weight)


def test_logits_match_transformers(smollm):
    transformers = pytest.importorskip("transformers")
    path = find_default_gguf()
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    text = render_chatml([{"role": "user", "content": "My sister Anna moved to Lisbon in May. Where does Anna live?"}],
                         add_generation_prompt=True)
    ids = torch.tensor([smollm.tokenizer.encode(text).ids])
    assert ids.shape[1] < smollm.model.config.sliding_window
    with torch.no_grad():
        ours = smollm.model(ids).logits
        theirs = reference(ids).logits
    relative = (ours - theirs).norm() / theirs.norm()
    assert relative < 1e-4, f"relative error {relative:.2e}"


def test_greedy_chatml_answers_paris(smollm):
    text = render_chatml([{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True)
    ids = smollm.tokenizer.encode(text).ids
    out = list(generate(smollm.model, ids, max_new_tokens=24, stop_ids=[smollm.model.config.im_end_token_id]))
    assert "Paris" in smollm.tokenizer.decode(out)


def test_missing_base_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="base weights not found"):
        read_base(tmp_path / "nothing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(WeightsError, match="cannot read GGUF"):
        read_base(bad, use_cache=False)
