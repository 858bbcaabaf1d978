"""Backend dispatch: "auto" picks Triton for CUDA tensors and the reference elsewhere."""
import pytest
import torch

from hsa_memory.kernels import BACKENDS, get_backend


def test_auto_picks_by_device():
    assert get_backend("auto", torch.zeros(1)) is BACKENDS["reference"]
    if torch.cuda.is_available():
        assert get_backend("auto", torch.zeros(1, device="cuda")) is BACKENDS["triton"]


CORE = {
    "hsa_attention": ["q", "mem_k", "mem_v", "chunk_idx", "chunk_w", "sm_scale"],
    "landmark_topk": ["queries", "landmarks", "topk", "visible_upto", "scale", "gumbel_seed"],
    "sliding_window_attention": ["q", "k", "v", "window", "sink_logits", "sm_scale"],
}


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("op", CORE)
def test_backends_share_one_signature(backend, op):
    import inspect

    params = inspect.signature(getattr(BACKENDS[backend], op)).parameters
    assert list(params)[: len(CORE[op])] == CORE[op]
    if op == "hsa_attention":
        assert "paged" in params


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="'auto', 'reference' or 'triton'"):
        get_backend("cuda")
