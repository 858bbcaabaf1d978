"""Kernel tests: on CUDA when there is a GPU, else on the CPU through Triton's interpreter.

Every ``torch.empty``/``torch.empty_like`` is poisoned (NaN, or a huge integer), so an output element
a kernel forgets to write fails the comparison instead of passing by luck.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    # before any kernel module is imported: @triton.jit reads it when it wraps a function
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# relative error bounds by input dtype (‖tri - ref‖ / ‖ref‖); the reference computes in float32
TOLERANCE = {torch.float32: 0.005, torch.float16: 0.005, torch.bfloat16: 0.02}

_empty = torch.empty
_empty_like = torch.empty_like


def _poison(t):
    if t.is_floating_point():
        return t.fill_(float("nan"))
    if t.dtype != torch.bool:
        return t.fill_(torch.iinfo(t.dtype).max)
    return t


@pytest.fixture(autouse=True)
def poisoned_empty(monkeypatch):
    monkeypatch.setattr(torch, "empty", lambda *a, **k: _poison(_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: _poison(_empty_like(*a, **k)))


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture(params=["float32", "float16", "bfloat16"])
def dtype(request):
    if request.param == "bfloat16" and DEVICE == "cpu":
        pytest.skip("Triton 3.9's CPU interpreter multiplies bf16 tiles wrongly; bf16 runs on the GPU")
    return getattr(torch, request.param)


@pytest.fixture
def tolerance(dtype):
    return TOLERANCE[dtype]


@pytest.fixture
def assert_close():
    def check(name, ref, tri, tol=0.005):
        assert tri.shape == ref.shape, f"{name}: shape {tuple(tri.shape)} != {tuple(ref.shape)}"
        tri, ref = tri.detach().double(), ref.detach().double()
        assert not torch.isnan(tri).any(), f"{name}: NaN (an element was never written?)"
        err = ((tri - ref).norm() / ref.norm().clamp_min(1e-30)).item()
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol}"

    return check
