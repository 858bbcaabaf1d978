"""Scenarios: a saved ingest state (CPU tensors on disk) comes back on the model's device and dtype; the
Ingestor restores it there; an SWA cache holding tensors of another device continues on the new keys'.

No GPU is needed: the 'meta' device stands in for CUDA (a CPU tensor concatenated with a meta one fails
exactly as with a CUDA one)."""
from types import SimpleNamespace

import torch

from hsa_memory.ingest import Ingestor
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


def assert_on(state: IngestState, device: torch.device, dtype: torch.dtype) -> None:
    held = [c for c in state.stream.caches if c.keys is not None]
    assert len(held) == 2 and state.stream.caches[2].keys is None
    for tensor in [t for c in held for t in (c.keys, c.values)] + [state.stream.pending_hidden]:
        assert tensor.device == device and tensor.dtype == dtype


def test_from_bytes_puts_tensors_on_the_requested_device_and_dtype():
    data = saved_state()
    assert_on(IngestState.from_bytes(data), torch.device("cpu"), torch.float32)  # as saved
    state = IngestState.from_bytes(data, device=META, dtype=torch.bfloat16)
    assert_on(state, META, torch.bfloat16)
    assert state.stream.position == 5 and state.stream.pending_ids == [1, 2, 3, 4, 5]
    assert state.tail_ids == [1, 2, 3, 4, 5] and state.pending_seqs == [7] * 5


def test_ingestor_restores_the_saved_state_on_the_models_device():
    """The bug: a reopened memory's caches stayed on the CPU while the model ran on CUDA."""
    model = SimpleNamespace(lm_head=SimpleNamespace(weight=torch.empty(2, 2, device=META, dtype=torch.bfloat16)))
    store = SimpleNamespace(generation=lambda: 0, ingest_cursor=lambda: (3, saved_state()))
    ingestor = Ingestor(model, tokenizer=None, store=store)
    assert_on(ingestor.state, META, torch.bfloat16)


def test_kv_cache_continues_on_the_new_keys_device():
    cache = KVCache(4)
    cache.keys, cache.values = torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4)  # restored: CPU, float32
    new = torch.empty(1, 2, 2, 4, device=META, dtype=torch.bfloat16)
    keys, values = cache.update(new, new.clone())
    assert keys.shape == (1, 5, 2, 4) and keys.device == META and keys.dtype == torch.bfloat16
    assert values.device == META and cache.keys.device == META and cache.keys.shape[1] == 3
