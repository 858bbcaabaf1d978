"""The five systems of ``bench/compare.py`` behind one small interface: ingest a workload, search, answer.

``ingest`` returns the seconds it took (chunking and tokenisation included: every system pays for
them), ``retrieve`` returns chunk positions best first (None where nothing is retrieved),
``answer`` returns the reply text, ``state_bytes`` what the system keeps for the memory.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Protocol

import torch

from compare_chunks import build_stream, make_chunks
from compare_infllm import InfLLM, InfLLMConfig
from compare_readers import BASE_CONTEXT, FullContext, load_base_reader, rag_answer
from compare_retrievers import BM25Retriever, DenseRetriever, MiniLMEncoder
from compare_workloads import Workload

SYSTEMS = ("hsa-memory", "bm25+reader", "dense+reader", "full-context", "infllm", "infllm-attn", "infllm-quest")


class System(Protocol):
    name: str
    state_where: str

    def ingest(self, workload: Workload) -> float: ...
    def retrieve(self, question: str, k: int) -> list[int] | None: ...
    def answer(self, question: str, max_new_tokens: int) -> str: ...
    def state_bytes(self) -> int: ...
    def close(self) -> None: ...


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class HsaMemorySystem:
    """``hsa_memory.Memory`` as users get it (default weights, or ``checkpoint``); recall from ``search``."""

    name = "hsa-memory"
    state_where = "disk"

    def __init__(self, folder: Path, device: str = "cpu", checkpoint: str | None = None, top_k: int = 8):
        from hsa_memory.memory import default_dtype, resolve_device, shared_model
        from hsa_memory.model.config import DEFAULT_PRESET
        from hsa_memory.model.loading import load_model

        self.folder = folder
        self.device = device
        dev = resolve_device(device)
        if checkpoint is not None:
            self.model = load_model(DEFAULT_PRESET, checkpoint=checkpoint, device=dev, dtype=default_dtype(dev))
            self.trained = self.model.trained
        else:
            # what Memory(path) loads by default (bundled weights when they exist), loaded now so the
            # load is not timed as ingest
            self.trained = shared_model(DEFAULT_PRESET, dev, default_dtype(dev)).trained
            self.model = DEFAULT_PRESET
        self.memory = None
        self.top_k = top_k

    def ingest(self, workload: Workload) -> float:
        from hsa_memory import Memory

        self.close()
        # one folder per workload: two workers may ingest a size's workloads side by side
        self.path = self.folder / f"memory-{workload.task}"
        shutil.rmtree(self.path, ignore_errors=True)
        self.memory = Memory(self.path, model=self.model, device=self.device)
        self.trained = self.memory.loaded.trained
        batch = [{"role": m["role"], "content": m["content"], "time": m["time"]} for m in workload.messages]
        started = time.perf_counter()
        for start in range(0, len(batch), 256):
            self.memory.extend(batch[start:start + 256])
        return time.perf_counter() - started

    def retrieve(self, question: str, k: int) -> list[int]:
        hits = self.memory.search(question, k=k)
        infos = {info.id: info.position for info in self.memory.store.chunks([h.chunk_id for h in hits])}
        return [infos[h.chunk_id] for h in hits]

    def answer(self, question: str, max_new_tokens: int) -> str:
        return self.memory.ask(question, max_new_tokens=max_new_tokens, citations=self.top_k).text

    def state_bytes(self) -> int:
        self.memory.close()
        size = folder_bytes(self.path)
        self.memory = None
        return size

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory = None


def excerpts(chunks: list[str], positions: list[int]) -> list[str]:
    """The retrieved chunks in stream order (later facts read last), neighbours joined into one excerpt:
    a 64-token cut can split a word or a number, and the reader should see it whole when both halves
    were retrieved."""
    runs: list[list[int]] = []
    for position in sorted(set(positions)):
        if runs and position == runs[-1][-1] + 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    return ["".join(chunks[i] for i in run) for run in runs]


class RagSystem:
    """A retriever over the shared chunks + the base SmolLM2 reading its top-K (in stream order)."""

    state_where = "disk"

    def __init__(self, kind: str, folder: Path, device: str = "cpu", top_k: int = 8):
        self.name = f"{kind}+reader"
        self.kind = kind
        self.top_k = top_k
        self.folder = folder
        self.reader = load_base_reader(device)
        self.encoder = MiniLMEncoder(device) if kind == "dense" else None
        self.retriever = None

    def ingest(self, workload: Workload) -> float:
        started = time.perf_counter()
        stream = build_stream(workload.messages, self.reader.tokenizer)
        self.chunks = [c.text for c in make_chunks(stream.ids, self.reader.tokenizer)]
        self.retriever = (BM25Retriever(self.chunks) if self.kind == "bm25"
                          else DenseRetriever(self.chunks, self.encoder))
        return time.perf_counter() - started

    def retrieve(self, question: str, k: int) -> list[int]:
        return self.retriever.search(question, k)

    def answer(self, question: str, max_new_tokens: int) -> str:
        top = self.retrieve(question, self.top_k)
        return rag_answer(self.reader, excerpts(self.chunks, top), question, max_new_tokens)

    def state_bytes(self) -> int:
        target = self.folder / self.name
        shutil.rmtree(target, ignore_errors=True)
        return self.retriever.save(target)

    def close(self) -> None:
        pass


class FullContextSystem:
    """The whole memory in the base model's 8K context (prefix cache kept in RAM between questions)."""

    name = "full-context"
    state_where = "RAM (KV cache)"

    def __init__(self, device: str = "cpu"):
        self.reader = load_base_reader(device)
        self.context = None

    @staticmethod
    def fits(size: int) -> bool:
        return size <= BASE_CONTEXT

    def ingest(self, workload: Workload) -> float:
        started = time.perf_counter()
        stream = build_stream(workload.messages, self.reader.tokenizer)
        self.context = FullContext(self.reader, stream.ids)
        self.dropped = self.context.dropped
        return time.perf_counter() - started

    def retrieve(self, question: str, k: int) -> None:
        return None

    def answer(self, question: str, max_new_tokens: int) -> str:
        return self.context.answer(question, max_new_tokens)

    def state_bytes(self) -> int:
        return self.context.cache_bytes()

    def close(self) -> None:
        self.context = None


# the block-scoring modes of ``compare_infllm`` that run as systems (see its docstring): InfLLM's representative
# keys; the question's own attention over every stored key (the strongest score of the family: no summary to
# approximate it, at the price of reading every key at each ask); Quest's per-channel key bounds (max over
# the question's query tokens and heads)
INFLLM_MODES = {"infllm": {"score": "repr"}, "infllm-attn": {"score": "attn"},
                "infllm-quest": {"score": "quest", "reduce": "max"}}


class InfLLMSystem:
    """Training-free block retrieval on the base SmolLM2 in the style of InfLLM (``compare_infllm``): the
    stream's K/V per 64-token block on disk, each layer reading its top-K blocks by representative keys
    (``infllm``), by the question's attention over every stored key (``infllm-attn``) or by Quest's
    per-channel key bounds (``infllm-quest``)."""

    state_where = "disk"

    def __init__(self, folder: Path, device: str = "cpu", top_k: int = 8, name: str = "infllm"):
        self.name = name
        self.folder = folder
        self.reader = load_base_reader(device)
        self.infllm = InfLLM(self.reader, InfLLMConfig(top_k=top_k, **INFLLM_MODES[name]))
        self.memory = None

    def ingest(self, workload: Workload) -> float:
        started = time.perf_counter()
        stream = build_stream(workload.messages, self.reader.tokenizer)
        # one folder per workload: two workers may ingest a size's workloads side by side
        self.path = self.folder / f"{self.name}-{workload.task}"
        shutil.rmtree(self.path, ignore_errors=True)
        self.memory = self.infllm.ingest(stream.ids, self.path)
        return time.perf_counter() - started

    def retrieve(self, question: str, k: int) -> list[int]:
        return self.infllm.retrieve(self.memory, question, k)

    def answer(self, question: str, max_new_tokens: int) -> str:
        return self.infllm.answer(self.memory, question, max_new_tokens)

    def state_bytes(self) -> int:
        return folder_bytes(self.path)

    def close(self) -> None:
        self.memory = None


def make_system(name: str, folder: Path, device: str = "cpu", checkpoint: str | None = None,
                top_k: int = 8) -> System:
    torch.manual_seed(0)
    if name == "hsa-memory":
        return HsaMemorySystem(folder, device, checkpoint, top_k)
    if name in ("bm25+reader", "dense+reader"):
        return RagSystem(name.split("+")[0], folder, device, top_k)
    if name == "full-context":
        return FullContextSystem(device)
    if name in INFLLM_MODES:
        return InfLLMSystem(folder, device, top_k, name)
    raise ValueError(f"unknown system {name!r}; choose from {list(SYSTEMS)}")
