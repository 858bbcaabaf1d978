"""codecs/: what cold segments hold.

Scenarios:
- zstd_shuffle round trips bit-exactly for every K/V dtype, special values included;
- shuffling makes zstd smaller than on the interleaved bytes;
- int8_zstd keeps every value within scale/2 (+ the dtype's own rounding), per chunk, K/V and head;
- an all-zero chunk stays zero; an unknown codec name raises UnknownCodec.
"""
import numpy as np
import pytest

from hsa_memory.store import codecs
from hsa_memory.store.arrays import raw_to_float32, to_raw_kv
from hsa_memory.store.codecs.base import zstd_compress
from hsa_memory.store.errors import UnknownCodec
from hsa_memory.store.layout import KVLayout


def chunk(layout, seed=42, scale_per_head=True):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((1, *layout.kv_shape)).astype(np.float32)
    v = rng.standard_normal((1, *layout.kv_shape)).astype(np.float32)
    if scale_per_head:
        # heads of very different magnitude: a shared scale would crush the small one
        k *= np.array([0.01, 30.0][: layout.kv_heads])[None, None, :, None]
    return to_raw_kv(k, v, layout)[0].tobytes()


@pytest.mark.parametrize("kv_dtype", ["bfloat16", "float16", "float32"])
def test_zstd_shuffle_round_trip_is_bit_exact(kv_dtype):
    layout = KVLayout(chunk_size=64, kv_heads=2, head_dim=24, landmark_dim=8, kv_dtype=kv_dtype)
    codec = codecs.get("zstd_shuffle")
    raw = bytearray(chunk(layout))
    # signed zeros, a subnormal and the largest finite value survive too
    itemsize = layout.itemsize
    specials = {"bfloat16": [b"\x00\x80", b"\x01\x00", b"\x7f\x7f"], "float16": [b"\x00\x80", b"\x01\x00", b"\xff\x7b"],
                "float32": [b"\x00\x00\x00\x80", b"\x01\x00\x00\x00", b"\xff\xff\x7f\x7f"]}[kv_dtype]
    for i, s in enumerate(specials):
        raw[i * itemsize: (i + 1) * itemsize] = s
    raw = bytes(raw)
    assert codec.decode(codec.encode(raw, layout), layout) == raw


def test_shuffle_beats_plain_zstd():
    layout = KVLayout(chunk_size=64, kv_heads=2, head_dim=24, landmark_dim=8)
    raw = chunk(layout)
    shuffled = codecs.get("zstd_shuffle").encode(raw, layout)
    assert len(shuffled) < len(zstd_compress(raw, 3)) < len(raw) * 1.01


@pytest.mark.parametrize("kv_dtype", ["bfloat16", "float16", "float32"])
def test_int8_error_is_bounded_per_head(kv_dtype):
    layout = KVLayout(chunk_size=64, kv_heads=2, head_dim=24, landmark_dim=8, kv_dtype=kv_dtype)
    codec = codecs.get("int8_zstd")
    raw = chunk(layout)
    record = codec.encode(raw, layout)
    x = raw_to_float32(raw, kv_dtype).reshape(2, *layout.kv_shape)
    y = raw_to_float32(codec.decode(record, layout), kv_dtype).reshape(2, *layout.kv_shape)
    scale = np.abs(x).max(axis=(1, 3)) / 127.0  # (2, HK)
    rounding = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24}[kv_dtype]
    bound = scale[:, None, :, None] / 2 + np.abs(y) * rounding + 1e-12
    assert (np.abs(x - y) <= bound).all()
    # the small head keeps relative precision: its error is ~1% of its own range, not of the big head's
    small = np.abs(x[0, :, 0] - y[0, :, 0]).max() / np.abs(x[0, :, 0]).max()
    assert small < 0.01
    assert len(record) < len(raw) * 0.6 * (2 / layout.itemsize)


def test_int8_zero_chunk_stays_zero():
    layout = KVLayout(chunk_size=64, kv_heads=1, head_dim=8, landmark_dim=8)
    raw = bytes(layout.kv_bytes)
    codec = codecs.get("int8_zstd")
    assert codec.decode(codec.encode(raw, layout), layout) == raw


def test_unknown_codec_is_a_typed_error():
    with pytest.raises(UnknownCodec, match="no codec named 'lz5'"):
        codecs.get("lz5")
