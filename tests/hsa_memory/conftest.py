import pytest
import torch

from hsa_memory.model import get_preset
from hsa_memory.model.loading import load_model


@pytest.fixture(scope="session")
def tiny_loaded():
    """The tiny preset (random weights, real tokenizer) with live HSA outputs, shared by the API tests."""
    torch.manual_seed(42)
    loaded = load_model(get_preset("tiny"), checkpoint=None)
    with torch.no_grad():
        for index in loaded.model.config.hsa_layer_indices:
            loaded.model.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
    return loaded


@pytest.fixture
def memory(tmp_path, tiny_loaded):
    from hsa_memory import Memory

    mem = Memory(tmp_path / "mem", model=tiny_loaded)
    yield mem
    mem.close()
