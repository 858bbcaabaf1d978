"""Copy bias at ask time: agent-memory answers with and without ``ask(copy_bias=...)`` on the same memory.

    python -P bench/copy_bias.py --size 8K --seed 777 --strengths 0,3 --questions 16 [--json PATH]

Tunes ``hsa_memory.copy_bias.DEFAULT_STRENGTH`` on agent-memory workloads built with seeds of one's choosing
(the generator of bench/compare.py; keep them apart from its held-out ``DEFAULT_SEED``, which then measures
the chosen default). One memory is built per call and asked every question at each strength; greedy decoding,
so the only difference between strengths is the bias.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_metrics import answer_match, token_f1  # noqa: E402
from compare_workloads import generate as make_workload, parse_size  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8K")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--strengths", default="0,3")
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--checkpoint", default=None, help="HSA weights (default: the bundled ones)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    from hsa_memory import Memory

    torch.set_num_threads(1)
    size = parse_size(args.size)
    strengths = [float(s) for s in args.strengths.split(",")]
    workload = make_workload("agent_memory", size, questions=args.questions, seed=args.seed)
    folder = Path(tempfile.mkdtemp(prefix="copy-bias-"))
    options = {}
    if args.checkpoint:
        from hsa_memory.memory import default_dtype
        from hsa_memory.model.config import DEFAULT_PRESET
        from hsa_memory.model.loading import load_model

        options["model"] = load_model(DEFAULT_PRESET, checkpoint=args.checkpoint, device=torch.device("cpu"),
                                      dtype=default_dtype(torch.device("cpu")))
    try:
        with Memory(folder / "memory", **options) as mem:
            started = time.perf_counter()
            batch = [{"role": m["role"], "content": m["content"], "time": m["time"]} for m in workload.messages]
            for start in range(0, len(batch), 256):
                mem.extend(batch[start:start + 256])
            print(f"ingested {mem.stats()['tokens']} tokens in {time.perf_counter() - started:.0f} s "
                  f"(trained HSA weights: {mem.trained})", flush=True)
            rows = []
            for strength in strengths:
                answers = [mem.ask(qa.question, max_new_tokens=args.max_new_tokens, copy_bias=strength).text
                           for qa in workload.questions]
                match = sum(answer_match(a, qa.answer) for a, qa in zip(answers, workload.questions)) / len(answers)
                f1 = sum(token_f1(a, qa.answer) for a, qa in zip(answers, workload.questions)) / len(answers)
                rows.append({"strength": strength, "match": match, "f1": f1, "n": len(answers),
                             "answers": [{"gold": qa.answer, "answer": a} for qa, a in zip(workload.questions, answers)]})
                print(f"copy_bias {strength:g}: match {match:.3f}  F1 {f1:.3f}  (n = {len(answers)})", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"size": size, "seed": args.seed, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
