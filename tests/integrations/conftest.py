import pytest
import torch

from hsa_memory.model import get_preset
from hsa_memory.model.loading import load_model

FACTS = [
    "My sister Anna moved to Lisbon in May and works there as a marine biologist.",
    "Our dog Rex is a three year old beagle who loves long walks by the river.",
    "I am allergic to peanuts, so never suggest a recipe that contains them.",
    "My favourite composer is Erik Satie, especially the Gymnopédies.",
    "The train to Porto leaves at nine from the central station every Sunday.",
    "Grandma Rosa turns ninety on the fourth of October; we plan a garden party.",
]


@pytest.fixture(scope="session")
def tiny_loaded():
    """The tiny preset (random weights, real tokenizer) with live HSA outputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        loaded = load_model(get_preset("tiny"), checkpoint=None)
        with torch.no_grad():
            for index in loaded.model.config.hsa_layer_indices:
                loaded.model.model.layers[index].o_proj.weight.normal_(0.0, 0.2)
    return loaded


@pytest.fixture(scope="session")
def filled_memory(tmp_path_factory, tiny_loaded):
    """A read-mostly memory of about 20 chunks, shared by the retriever and tool tests."""
    from hsa_memory import Memory

    mem = Memory(tmp_path_factory.mktemp("filled") / "memory", model=tiny_loaded)
    mem.extend([{"role": "user" if i % 2 == 0 else "assistant", "content": f"{FACTS[i % len(FACTS)]} (note {i})"}
                for i in range(48)])
    yield mem
    mem.close()


@pytest.fixture
def memory(tmp_path, tiny_loaded):
    from hsa_memory import Memory

    mem = Memory(tmp_path / "memory", model=tiny_loaded)
    yield mem
    mem.close()
