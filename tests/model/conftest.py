import dataclasses

import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset


@pytest.fixture
def tiny_model():
    """The tiny preset with every HSA output projection made non-zero, so HSA paths matter."""
    torch.manual_seed(42)
    model = HSAForCausalLM(get_preset("tiny")).eval()
    with torch.no_grad():
        for index in model.config.hsa_layer_indices:
            model.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
            model.model.layers[index].retrieval.slot_bias.normal_(0.0, 0.5)
    return model


@pytest.fixture(scope="session")
def smollm():
    """The default model (base weights, no trained checkpoint): loaded once per session."""
    from hsa_memory.model.loading import load_model

    return load_model("hsa-smollm2-135m", checkpoint=None)


def tiny_with_hsa_outputs(seed: int = 0, **fields) -> HSAForCausalLM:
    """The tiny preset with ``fields`` replaced and every HSA output projection non-zero, so HSA paths matter
    (a fresh layer's zero o_proj gives the fusion weights no gradient and no effect)."""
    torch.manual_seed(seed)
    model = HSAForCausalLM(dataclasses.replace(get_preset("tiny"), **fields)).eval()
    with torch.no_grad():
        for index in model.config.hsa_layer_indices:
            model.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
    return model


@pytest.fixture
def tiny_hsa():
    """A factory: ``tiny_hsa(seed, **config fields)`` → ``tiny_with_hsa_outputs``."""
    return tiny_with_hsa_outputs


@pytest.fixture
def train_tiny(tmp_path):
    """A factory: three training steps of the tiny preset from ``start`` (a model, saved as the checkpoint to
    resume) with more train.py ``flags``, the per-rank-bias lr at 50x; returns the trained model as loaded back."""
    from hsa_memory.model.checkpoint import save_checkpoint
    from hsa_memory.model.loading import load_model
    from hsa_memory.training.train import parse_args, train

    def run(start: HSAForCausalLM, *flags: str) -> HSAForCausalLM:
        resume = save_checkpoint(start, tmp_path / "start.safetensors")
        out = tmp_path / "run"
        train(parse_args(["--preset", "tiny", "--resume", str(resume), "--out", str(out), "--steps", "3",
                          "--batch", "2", "--seq-len", "512", "--mix", "agent_memory:1", "--filler", "fallback",
                          "--workers", "0", "--eval", "", "--bias-lr-scale", "50", "--lr", "1e-3",
                          "--kl-positions", "8", "--device", "cpu", "--backend", "reference", *flags]))
        return load_model("tiny", checkpoint=out / "checkpoint.safetensors").model

    return run
