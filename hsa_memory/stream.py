"""The ingest cursor's state: where the token stream stands, saved with every chunk commit.

It holds the lower decoder's SWA caches and the open chunk (so a restart resumes exactly), the
recent tail of token ids (the question's local context), and which event each pending token came
from. Serialised as safetensors bytes with JSON metadata: never pickle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from hsa_memory.model import KVCache, StreamState

from hsa_memory.store.errors import StoreCorrupted

STATE_FORMAT = "hsa-memory-ingest-state/1"


@dataclass
class IngestState:
    stream: StreamState
    # the event of each token of the open chunk (parallel to stream.pending_ids)
    pending_seqs: list[int] = field(default_factory=list)
    # role and time (µs since epoch) of the events those tokens came from
    event_info: dict[int, tuple[str, int]] = field(default_factory=dict)
    # the last tokens of the stream, for the question's context, and the event each came from (-1: not
    # recorded, states written before tail_seqs existed)
    tail_ids: list[int] = field(default_factory=list)
    tail_seqs: list[int] = field(default_factory=list)
    # an event encoded only partly: (seq, tokens of it consumed), for huge appends
    partial: tuple[int, int] | None = None

    def to_bytes(self) -> bytes:
        tensors = {}
        for i, cache in enumerate(self.stream.caches):
            if cache.keys is not None:
                tensors[f"cache.{i}.keys"] = cache.keys.detach().cpu().contiguous()
                tensors[f"cache.{i}.values"] = cache.values.detach().cpu().contiguous()
        if self.stream.pending_hidden is not None:
            tensors["pending_hidden"] = self.stream.pending_hidden.detach().cpu().contiguous()
        meta = {
            "position": self.stream.position, "pending_ids": self.stream.pending_ids, "layers": len(self.stream.caches),
            "window": self.stream.caches[0].window if self.stream.caches else None,
            "pending_seqs": self.pending_seqs, "event_info": {str(k): v for k, v in self.event_info.items()},
            "tail_ids": self.tail_ids, "tail_seqs": self.tail_seqs, "partial": self.partial,
        }
        return save_tensors(tensors, metadata={"format": STATE_FORMAT, "state": json.dumps(meta)})

    @classmethod
    def from_bytes(cls, data: bytes) -> "IngestState":
        try:
            tensors = load_tensors(data)
            # safetensors.torch.load drops metadata; read the header directly (8-byte length + JSON)
            header = json.loads(data[8: 8 + int.from_bytes(data[:8], "little")])
            meta_block = header.get("__metadata__", {})
            if meta_block.get("format") != STATE_FORMAT:
                raise ValueError(f"format {meta_block.get('format')!r}")
            meta = json.loads(meta_block["state"])
            caches = []
            for i in range(meta["layers"]):
                cache = KVCache(meta["window"])
                cache.keys = tensors.get(f"cache.{i}.keys")
                cache.values = tensors.get(f"cache.{i}.values")
                caches.append(cache)
            stream = StreamState(position=meta["position"], caches=caches,
                                 pending_hidden=tensors.get("pending_hidden"), pending_ids=list(meta["pending_ids"]))
            partial = tuple(meta["partial"]) if meta["partial"] is not None else None
            tail_ids = list(meta["tail_ids"])
            tail_seqs = list(meta.get("tail_seqs", []))
            tail_seqs = [-1] * (len(tail_ids) - len(tail_seqs)) + tail_seqs
            return cls(stream, list(meta["pending_seqs"]), {int(k): tuple(v) for k, v in meta["event_info"].items()},
                       tail_ids, tail_seqs, partial)
        except Exception as exc:  # safetensors raises its own SafetensorError; a damaged header anything else
            raise StoreCorrupted(f"the saved ingest state is unreadable ({type(exc).__name__}: {exc}); "
                                 "run repair() to rebuild it") from exc
