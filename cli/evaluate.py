"""``eval``: evaluations that build memories with ``Memory`` and score what ``ask`` returns."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click

from .state import State, emit, output_options, pass_state


def _numbers(kind: type, low: float | None = None, high: float | None = None):
    def convert(ctx: click.Context, param: click.Parameter, value: str) -> list:
        try:
            numbers = [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list of {kind.__name__}s") from None
        bad = [n for n in numbers if (low is not None and n < low) or (high is not None and n > high)]
        if not numbers or bad:
            raise click.BadParameter(f"each value must lie in [{low}, {high if high is not None else '∞'}], "
                                     f"got {value!r}")
        return numbers

    return convert


@click.group(name="eval")
def eval_():
    """Evaluate the model on memory tasks.

    \b
    hsa-memory eval niah --lengths 4096,8192 --depths 0,0.5,1 --count 5
    """


@eval_.command()
@click.option("--lengths", default="4096", show_default=True, callback=_numbers(int, 64),
              help="Haystack lengths in tokens, comma-separated.")
@click.option("--depths", default="0,0.5,1", show_default=True, callback=_numbers(float, 0.0, 1.0),
              help="Needle depths (0 = start, 1 = end), comma-separated.")
@click.option("--count", type=click.IntRange(1), default=3, show_default=True, help="Examples per cell.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first example.")
@click.option("--max-tokens", type=click.IntRange(1), default=32, show_default=True, help="Tokens per answer.")
@output_options
@pass_state
def niah(state: State, lengths: list[int], depths: list[float], count: int, seed: int, max_tokens: int):
    """Single needle in a haystack: ask for its value, score the answers.

    \b
    hsa-memory --model hsa-smollm2-135m eval niah --lengths 4096,8192 --count 5 --json
    """
    try:
        from hsa_memory.training.data.niah import s_niah
    except ImportError as exc:
        raise click.ClickException(f"the NIAH evaluation is not available yet ({exc})") from exc
    from hsa_memory import Memory

    model = state.model_for_memory()
    rows = []
    cells = [(length, depth) for length in lengths for depth in depths]
    with click.progressbar(length=len(cells) * count, label="examples", file=sys.stderr,
                           hidden=state.quiet or not sys.stderr.isatty()) as bar:
        for length, depth in cells:
            exact = cited = 0
            seconds = 0.0
            for i in range(count):
                example = s_niah(seed=seed + i, target_tokens=length, depth=depth)
                question = example.questions[0]
                with tempfile.TemporaryDirectory(prefix="hsa-eval-") as folder:
                    with Memory(Path(folder) / "memory", model=model, device=state.device) as mem:
                        mem.extend([{"role": m.role, "content": m.content, "time": m.time}
                                    for m in example.messages])
                        started = time.perf_counter()
                        answer = mem.ask(question.text, max_new_tokens=max_tokens)
                        seconds += time.perf_counter() - started
                exact += question.answer in answer.text
                cited += any(question.answer in c.text for c in answer.citations)
                bar.update(1)
            rows.append({"length": length, "depth": depth, "n": count, "exact": exact / count,
                         "cited": cited / count, "ask_seconds": seconds / count})
    header = f"{'length':>8} {'depth':>6} {'n':>4} {'exact':>6} {'cited':>6} {'ask s':>7}"
    table = [header] + [f"{r['length']:>8} {r['depth']:>6.2f} {r['n']:>4} {r['exact']:>6.2f} {r['cited']:>6.2f} "
                        f"{r['ask_seconds']:>7.2f}" for r in rows]
    emit(state, {"task": "s_niah", "model": state.model, "max_tokens": max_tokens, "rows": rows},
         text="\n".join(table) + "\n(exact: the answer holds the needle's value; cited: a cited chunk holds it)")


COMMANDS = [eval_]
