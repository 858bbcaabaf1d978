"""Scenarios: a checkpoint round-trips the trained modules exactly; corrupted, truncated, foreign or
mismatched checkpoints raise CheckpointError naming the file or tensor."""
import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.checkpoint import CheckpointError, load_checkpoint, project_parameter_names, save_checkpoint


def test_round_trip(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt.safetensors")
    fresh = HSAForCausalLM(get_preset("tiny"))
    load_checkpoint(fresh, path)
    for name in project_parameter_names(tiny_model):
        assert torch.equal(fresh.state_dict()[name], tiny_model.state_dict()[name]), name
    names = project_parameter_names(tiny_model)
    assert any(n.startswith("model.chunk_encoder.") for n in names)
    assert "model.embed_tokens.weight" not in names
    assert [n for n in names if n.startswith("model.layers.0.")] == ["model.layers.0.self_attn.sink_logits"]


def test_truncated_and_garbage_files(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tiny_model, tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tiny_model, tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tiny_model, tmp_path / "absent.safetensors")


def test_mismatched_config_and_shapes(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt.safetensors")
    other = get_preset("tiny")
    other.encoder_layers = 2
    with pytest.raises(CheckpointError, match="encoder_layers: model 2 vs checkpoint 1"):
        load_checkpoint(HSAForCausalLM(other), path)


def test_tampered_tensor_is_named(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    path = save_checkpoint(tiny_model, tmp_path / "ckpt.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    tensors["model.chunk_encoder.cls"] = torch.zeros(3)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="model.chunk_encoder.cls has shape \\(3,\\)"):
        load_checkpoint(tiny_model, tmp_path / "bad.safetensors")
    tensors["model.chunk_encoder.cls"] = torch.full_like(tiny_model.model.chunk_encoder.cls, float("nan"))
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(tiny_model, tmp_path / "nan.safetensors")
    del tensors["model.chunk_encoder.cls"]
    save_file(tensors, str(tmp_path / "missing.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="missing \\['model.chunk_encoder.cls'\\]"):
        load_checkpoint(tiny_model, tmp_path / "missing.safetensors")
