"""arrays.py: conversions between caller arrays and stored bytes.

Scenarios:
- float32 → bfloat16 bits rounds exactly like torch (nearest-even ties, NaN, inf, subnormals);
- torch and numpy inputs of any float dtype become the same stored bytes;
- wrong shapes, integer arrays and non-finite values are refused with InvalidChunks.
"""
import numpy as np
import pytest
import torch

from hsa_memory.store.arrays import bf16_bits_to_float32, float32_to_bf16_bits, to_landmark_rows, to_raw_kv
from hsa_memory.store.errors import InvalidChunks
from hsa_memory.store.layout import KVLayout

from .fakes import LAYOUT


def test_bf16_rounding_matches_torch():
    rng = np.random.default_rng(42)
    special = np.array([0.0, -0.0, 1.0, -2.5, 3.0e38, -3.0e38, 1e-40, -1e-45, np.inf, -np.inf, np.nan], np.float32)
    # exact ties between two bf16 values: low 16 bits 0x8000
    ties = (rng.integers(0, 2**15, 1000, dtype=np.uint32) << 16 | 0x8000).view(np.float32)
    values = np.concatenate([special, ties, rng.standard_normal(10000).astype(np.float32) * 100])
    ours = float32_to_bf16_bits(values)
    theirs = torch.from_numpy(values).bfloat16().view(torch.int16).numpy().view(np.uint16)
    finite = np.isfinite(values)
    assert np.array_equal(ours[finite], theirs[finite])
    assert np.array_equal(np.isnan(bf16_bits_to_float32(ours)), np.isnan(values))


@pytest.mark.parametrize("kv_dtype", ["bfloat16", "float16", "float32"])
def test_torch_and_numpy_inputs_store_the_same_bytes(kv_dtype):
    layout = KVLayout(chunk_size=64, kv_heads=2, head_dim=24, landmark_dim=8, kv_dtype=kv_dtype)
    k = np.random.default_rng(0).standard_normal((3, 64, 2, 24)).astype(np.float32)
    from_numpy = to_raw_kv(k, k * 2, layout)
    from_torch = to_raw_kv(torch.from_numpy(k), torch.from_numpy(k * 2), layout)
    assert from_numpy.shape == (3, layout.kv_bytes)
    assert np.array_equal(from_numpy, from_torch)
    # a bf16 tensor already in the target dtype passes through untouched
    if kv_dtype == "bfloat16":
        t = torch.from_numpy(k).bfloat16()
        raw = to_raw_kv(t, t, layout)
        assert raw[0, : 64 * 2 * 24 * 2].tobytes() == t[0].contiguous().view(torch.int16).numpy().tobytes()


def test_bad_inputs_are_refused():
    good = np.zeros((2, *LAYOUT.kv_shape), np.float32)
    with pytest.raises(InvalidChunks, match="shape"):
        to_raw_kv(good[:, :63], good, LAYOUT)
    with pytest.raises(InvalidChunks, match="float"):
        to_raw_kv(good.astype(np.int32), good, LAYOUT)
    bad = good.copy()
    bad[1, 5, 0, 3] = np.inf
    with pytest.raises(InvalidChunks, match="inf or NaN"):
        to_raw_kv(good, bad, LAYOUT)
    with pytest.raises(InvalidChunks, match="2 chunks but|holds 2 chunks"):
        to_raw_kv(good, good[:1], LAYOUT)
    with pytest.raises(InvalidChunks, match="landmarks"):
        to_landmark_rows(np.zeros((2, 7)), 2, LAYOUT.landmark_dim)
