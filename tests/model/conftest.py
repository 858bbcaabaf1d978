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
