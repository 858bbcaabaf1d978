"""`make demo`: a fresh memory, a short conversation appended, a question answered with citations.

Runs the embedded default model (hsa-smollm2-135m) on the CPU, offline.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from hsa_memory import Memory

CONVERSATION = [
    ("user", "My sister Anna moved to Lisbon in May."),
    ("assistant", "That's wonderful! Lisbon is a beautiful city."),
    ("user", "My dog is called Rex. He is a three-year-old beagle."),
    ("assistant", "Rex sounds like a lovely companion."),
]
QUESTIONS = ["Where does Anna live?", "What is the name of my dog?"]


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="hsa-memory-demo-") as folder:
        path = Path(folder) / "memory"
        started = time.perf_counter()
        with Memory(path) as memory:
            print(f"memory at {path} (model {memory.loaded.model_id}, "
                  f"{'trained' if memory.loaded.trained else 'UNTRAINED'} HSA weights, {memory.device})")
            for role, text in CONVERSATION:
                memory.append(text, role=role)
            stats = memory.stats()
            print(f"appended {stats['last_seq']} messages: {stats['tokens']} tokens, {stats['chunks']} chunks "
                  f"({time.perf_counter() - started:.1f}s incl. model load)\n")
            for question in QUESTIONS:
                answer = memory.ask(question, max_new_tokens=48)
                print(f"Q: {question}\nA: {answer.text}")
                for citation in answer.citations[:3]:
                    snippet = " ".join(citation.text.split())[:90]
                    print(f"   [{citation.weight:.0%}] chunk {citation.chunk_id}: {snippet}…")
                print(f"   ({answer.tokens} tokens in {answer.timings['total']:.2f}s)\n")
            hits = memory.search("dog", k=2)
            print("search('dog'):", ", ".join(f"chunk {h.chunk_id} ({h.score:.0%})" for h in hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
