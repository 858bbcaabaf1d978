"""Conversions between caller arrays (torch or numpy) and the raw bytes the store keeps.

torch is imported only when a torch tensor is handed in or asked for, so a process that only
appends numpy data (an ingest worker, the crash test's child) starts in well under a second.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .errors import InvalidChunks
from .layout import KVLayout

# exponent bits that mark inf/NaN in each raw 16-bit format
_NONFINITE_MASK = {"bfloat16": 0x7F80, "float16": 0x7C00}


def is_torch_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def float32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bits, nearest-even, as torch does (NaN becomes 0x7FC0)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        rounded[nan] = np.uint16(0x7FC0)
    return rounded


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (np.ascontiguousarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def float32_to_raw(a: np.ndarray, kv_dtype: str) -> np.ndarray:
    """float32 values → raw storage words (uint16 for 16-bit dtypes, float32 otherwise)."""
    if kv_dtype == "bfloat16":
        return float32_to_bf16_bits(a)
    if kv_dtype == "float16":
        return np.asarray(a, dtype=np.float32).astype(np.float16).view(np.uint16)
    return np.ascontiguousarray(a, dtype=np.float32)


def raw_to_float32(raw: np.ndarray | bytes, kv_dtype: str) -> np.ndarray:
    if kv_dtype == "bfloat16":
        return bf16_bits_to_float32(np.frombuffer(raw, dtype=np.uint16))
    if kv_dtype == "float16":
        return np.frombuffer(raw, dtype=np.float16).astype(np.float32)
    return np.frombuffer(raw, dtype=np.float32).copy()


def _torch_to_raw(t: Any, kv_dtype: str) -> np.ndarray:
    import torch

    target = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[kv_dtype]
    t = t.detach().to(device="cpu", dtype=target).contiguous()
    if kv_dtype == "float32":
        return t.numpy()
    return t.view(torch.int16).numpy().view(np.uint16)


def to_raw_kv(keys: Any, values: Any, layout: KVLayout) -> np.ndarray:
    """Keys and values ``(n, S, HK, D)`` → ``(n, kv_bytes)`` uint8, each row keys then values."""
    parts = []
    for name, x in (("keys", keys), ("values", values)):
        shape = tuple(x.shape)
        if len(shape) != 4 or shape[1:] != layout.kv_shape:
            raise InvalidChunks(f"{name} has shape {shape}, expected (n, {', '.join(map(str, layout.kv_shape))})")
        if is_torch_tensor(x):
            if not x.is_floating_point():
                raise InvalidChunks(f"{name} must be a float tensor, got {x.dtype}")
            raw = _torch_to_raw(x, layout.kv_dtype)
        else:
            x = np.asarray(x)
            if x.dtype.kind != "f":
                raise InvalidChunks(f"{name} must be a float array, got {x.dtype}")
            raw = float32_to_raw(x.astype(np.float32, copy=False), layout.kv_dtype)
        mask = _NONFINITE_MASK.get(layout.kv_dtype)
        finite = np.isfinite(raw).all() if mask is None else not ((raw & mask) == mask).any()
        if not finite:
            raise InvalidChunks(f"{name} holds inf or NaN after conversion to {layout.kv_dtype}")
        parts.append(np.ascontiguousarray(raw).reshape(shape[0], -1).view(np.uint8))
    if parts[0].shape[0] != parts[1].shape[0]:
        raise InvalidChunks(f"keys hold {parts[0].shape[0]} chunks but values {parts[1].shape[0]}")
    return np.concatenate(parts, axis=1)


def to_landmark_rows(landmarks: Any, n: int, dim: int) -> np.ndarray:
    """Landmarks ``(n, R)`` → contiguous float32 numpy."""
    if is_torch_tensor(landmarks):
        import torch

        landmarks = landmarks.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
    rows = np.ascontiguousarray(np.asarray(landmarks), dtype=np.float32)
    if rows.shape != (n, dim):
        raise InvalidChunks(f"landmarks have shape {rows.shape}, expected ({n}, {dim})")
    if not np.isfinite(rows).all():
        raise InvalidChunks("landmarks hold inf or NaN")
    return rows


def raw_kv_to_torch(raws: list[bytes], layout: KVLayout) -> list[tuple[Any, Any]]:
    """Chunks' raw bytes → (keys, values) per chunk, views into one CPU tensor in the layout dtype."""
    import torch

    target = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[layout.kv_dtype]
    words = np.frombuffer(b"".join(raws), dtype=np.int16 if layout.itemsize == 2 else np.float32).copy()
    t = torch.from_numpy(words)
    if layout.itemsize == 2:
        t = t.view(target)
    t = t.view(len(raws), 2, *layout.kv_shape)  # (n, 2, S, HK, D)
    return [(t[i, 0], t[i, 1]) for i in range(len(raws))]
