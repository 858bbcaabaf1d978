"""Scenarios: any Llama-family base in a Hugging Face folder (config.json + safetensors) loads, builds the
matching HSA config from the file's own shapes, and reproduces the source model's logits; a folder that
is not a Llama model, or lacks weights, is refused with a clear error."""
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.loading import load_model
from hsa_memory.model.tokenizer import DEFAULT_TOKENIZER
from hsa_memory.model.weights import WeightsError, base_name_map


def write_hf_folder(path, model):
    """The base part of ``model`` as a Hugging Face Llama folder."""
    config = model.config
    state = model.state_dict()
    mapping = base_name_map(config)
    tensors = {hf: state[ours].clone() for hf, ours in mapping.items()}
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({
        "model_type": "llama", "num_hidden_layers": config.layer_types.count("swa"),
        "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
        "num_attention_heads": config.num_heads, "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim, "rope_theta": config.rope_theta, "rms_norm_eps": config.rms_norm_eps,
        "vocab_size": config.vocab_size, "tie_word_embeddings": True}))
    return path


def test_hf_folder_base_loads_and_matches(tmp_path):
    torch.manual_seed(42)
    config = get_preset("tiny")
    config.layer_types = ["swa"] * 4
    config.sliding_window = None
    source = HSAForCausalLM(config).eval()
    folder = write_hf_folder(tmp_path / "base", source)
    with pytest.raises(WeightsError, match="needs its tokenizer.json"):
        load_model(folder, checkpoint=None)
    shutil.copy(DEFAULT_TOKENIZER, folder / "tokenizer.json")
    loaded = load_model(folder, checkpoint=None)
    ours = loaded.model.config
    assert ours.layer_types == ["swa", "swa", "hsa", "swa", "hsa", "swa"]
    assert (ours.hidden_size, ours.num_heads, ours.num_kv_heads) == (64, 4, 2)
    ids = torch.randint(0, config.vocab_size, (1, 40))
    with torch.no_grad():
        loaded.model.config.sliding_window = None
        for module in loaded.model.modules():
            if hasattr(module, "window"):
                module.window = None
        torch.testing.assert_close(loaded.model(ids).logits, source(ids).logits, rtol=1e-5, atol=1e-5)


def test_bad_folders_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no config.json"):
        load_model(tmp_path / "empty", checkpoint=None)
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(WeightsError, match="not a Llama-family model"):
        load_model(other, checkpoint=None)
    noweights = tmp_path / "noweights"
    noweights.mkdir()
    (noweights / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(WeightsError, match="no \\*.safetensors"):
        load_model(noweights, checkpoint=None)
