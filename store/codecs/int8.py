"""Lossy cold codec: 8-bit quantisation with one scale per chunk, per K/V, per head, then zstd.

``x ≈ q · scale`` with ``scale = max|x| / 127`` over the head's (tokens × dim) block, so the error
of a value is at most ``scale / 2`` before the result is rounded back to the layout dtype.
"""
from __future__ import annotations

import numpy as np

from ..arrays import float32_to_raw, raw_to_float32
from ..layout import KVLayout
from .base import Codec, zstd_compress, zstd_decompress


class Int8ZstdCodec(Codec):
    name = "int8_zstd"
    lossless = False

    def __init__(self, level: int = 3):
        self.level = level

    def encode(self, raw: bytes, layout: KVLayout) -> bytes:
        x = raw_to_float32(raw, layout.kv_dtype).reshape(2, *layout.kv_shape)  # (2, S, HK, D)
        absmax = np.abs(x).max(axis=(1, 3))  # (2, HK)
        scales = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(x / scales[:, None, :, None]), -127, 127).astype(np.int8)
        return zstd_compress(scales.tobytes() + q.tobytes(), self.level)

    def decode(self, record: bytes, layout: KVLayout) -> bytes:
        body = zstd_decompress(record)
        n_scales = 2 * layout.kv_heads
        scales = np.frombuffer(body, dtype=np.float32, count=n_scales).reshape(2, layout.kv_heads)
        q = np.frombuffer(body, dtype=np.int8, offset=4 * n_scales).reshape(2, *layout.kv_shape)
        x = q.astype(np.float32) * scales[:, None, :, None]
        return float32_to_raw(x, layout.kv_dtype).tobytes()

    def params(self) -> dict:
        return {"level": self.level}
