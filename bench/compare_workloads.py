"""Held-out workloads for ``bench/compare.py``: one memory per (task, size), several questions on it.

The generators are the training data's (``hsa_memory.training.data`` through the same
``TaskMixture`` and corpora that ``training.tasks.make_example`` uses), on ``split="heldout"``:
odd example seeds and held-out entity pools, never trained on. ``make_example`` has no way to ask
for more questions per example, and building a fresh 64K-token memory per question would cost a
CPU run hours, so each memory carries ``questions`` questions:

- ``agent_memory``: a multi-session agent history, ``n_questions`` facts asked (static, updated,
  tool results);
- ``niah``: multi-key NIAH (``mq_niah``) with ``questions`` needles, every one asked.

Evidence chunks are the training pipeline's (``training.batches.evidence_chunks``) over the
stream of ``compare_chunks``, i.e. positions in the very chunks every system reads.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from compare_chunks import CHUNK_SIZE, build_stream

WORKLOADS = ("agent_memory", "niah")
# the mixture seed of this benchmark; the split makes example seeds odd (held out), and it differs
# from training/evaluate.py's 10_000_019, so the two evaluations do not share examples
DEFAULT_SEED = 20_261_125


@dataclass
class QA:
    question: str
    answer: str
    evidence: list[int]  # chunk positions holding the evidence
    kind: str


@dataclass
class Workload:
    """One memory (messages in order) and the questions asked of it."""

    task: str
    size: int  # the requested memory size in tokens
    tokens: int  # the actual stream length in tokens
    seed: int
    messages: list[dict]  # {"id", "role", "content", "time"}
    questions: list[QA]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "Workload":
        data = json.loads(path.read_text())
        data["questions"] = [QA(**q) for q in data["questions"]]
        return cls(**data)


def generate(task: str, size: int, questions: int = 8, seed: int = DEFAULT_SEED, filler: str = "corpora") -> Workload:
    """Build the ``task`` workload at ``size`` tokens with ``questions`` questions (held-out split)."""
    from hsa_memory.training.batches import evidence_chunks
    from hsa_memory.training.data import TaskMixture
    from hsa_memory.training.tasks import sources, tokenizer

    if task == "agent_memory":
        name, kwargs = "agent_memory", {"n_questions": questions}
    elif task == "niah":
        name, kwargs = "mq_niah", {"num_pairs": questions, "num_queries": questions}
    else:
        raise ValueError(f"unknown workload {task!r}; choose from {list(WORKLOADS)}")
    mixture = TaskMixture({name: 1.0}, target_tokens=size, sources=sources(filler, "heldout"), split="heldout",
                          seed=seed, task_kwargs={name: kwargs})
    example = mixture.sample(0)
    tok = tokenizer()
    messages = [{"id": m.id, "role": m.role, "content": m.content, "time": m.time} for m in example.messages]
    stream = build_stream(messages, tok)
    qas = [QA(q.text, q.answer, sorted(evidence_chunks(example, q, stream.spans, tok, CHUNK_SIZE)), q.kind)
           for q in example.questions]
    return Workload(task, size, len(stream.ids), example.seed, messages, qas)


def parse_size(text: str) -> int:
    """'8K' → 8192, '1M' → 1048576, '5000' → 5000."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    return int(float(number) * scale)


def size_label(size: int) -> str:
    if size % (1 << 20) == 0:
        return f"{size >> 20}M"
    if size % (1 << 10) == 0:
        return f"{size >> 10}K"
    return str(size)
