"""Scenarios: a saved ingest state (CPU tensors on disk) comes back as saved, and every restored SWA cache
continues on the device and dtype of the model that resumes the stream (the bug: a memory reopened on CUDA
concatenated its CPU caches with CUDA keys); any cache holding tensors of another device does the same.

No GPU is needed: the 'meta' device stands in for CUDA (a CPU tensor concatenated with a meta one fails
exactly as with a CUDA one)."""
import torch

from hsa_memory.model import KVCache, StreamState
from hsa_memory.stream import IngestState

META = torch.device("meta")


def saved_state() -> bytes:
    caches = []
    for _ in range(2):
        cache = KVCache(8)
        cache.update(torch.randn(1, 5, 2, 4), torch.randn(1, 5, 2, 4))
        caches.append(cache)
    caches.append(KVCache(8))  # a layer that saw nothing yet
    stream = StreamState(position=5, caches=caches, pending_hidden=torch.randn(5, 16), pending_ids=[1, 2, 3, 4, 5])
    return IngestState(stream, pending_seqs=[7] * 5, event_info={7: ("user", 0)}, tail_ids=[1, 2, 3, 4, 5],
                       tail_seqs=[7] * 5).to_bytes()


def test_restored_state_continues_on_the_models_device():
    state = IngestState.from_bytes(saved_state())
    held = [c for c in state.stream.caches if c.keys is not None]
    assert len(held) == 2 and state.stream.caches[2].keys is None
    assert all(c.keys.device.type == "cpu" and c.keys.dtype == torch.float32 for c in held)  # as saved
    assert state.stream.position == 5 and state.stream.pending_ids == [1, 2, 3, 4, 5]
    assert state.tail_ids == [1, 2, 3, 4, 5] and state.pending_seqs == [7] * 5
    new = torch.empty(1, 2, 2, 4, device=META, dtype=torch.bfloat16)  # the next block, on the model's device
    for cache in held:
        keys, values = cache.update(new, new.clone())
        assert keys.shape == (1, 7, 2, 4) and keys.device == META and keys.dtype == torch.bfloat16
        assert values.device == META and cache.keys.device == META and cache.values.dtype == torch.bfloat16


def test_kv_cache_continues_on_the_new_keys_device():
    cache = KVCache(4)
    cache.keys, cache.values = torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4)  # restored: CPU, float32
    new = torch.empty(1, 2, 2, 4, device=META, dtype=torch.bfloat16)
    keys, values = cache.update(new, new.clone())
    assert keys.shape == (1, 5, 2, 4) and keys.device == META and keys.dtype == torch.bfloat16
    assert values.device == META and cache.keys.device == META and cache.keys.shape[1] == 3
