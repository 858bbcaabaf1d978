"""``ask`` and ``search``: the two ways to read a memory."""
from __future__ import annotations

import json

import click

from hsa_memory.copy_bias import DEFAULT_STRENGTH as DEFAULT_COPY_BIAS

from .state import State, emit, one_line, output_options, pass_state, plain


def _listing(items, weight_name: str) -> str:
    lines = []
    for rank, item in enumerate(items, 1):
        when = item.time.isoformat(timespec="seconds") if item.time else "-"
        lines.append(f"[{rank}] chunk {item.chunk_id}  {weight_name} {getattr(item, weight_name):.3f}  "
                     f"{','.join(item.roles)}  {when}")
        lines.append(f"    {one_line(item.text)}")
    return "\n".join(lines)


@click.command()
@click.argument("question")
@click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True,
              help="Most tokens to generate.")
@click.option("--temperature", type=click.FloatRange(0.0), default=0.0, show_default=True,
              help="0 is greedy decoding.")
@click.option("--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed for sampling (temperature > 0).")
@click.option("--citations", type=click.IntRange(0), default=5, show_default=True,
              help="How many cited chunks to return.")
@click.option("--copy-bias", type=click.FloatRange(0.0, 100.0), default=DEFAULT_COPY_BIAS, show_default=True,
              help="Logit bonus for tokens that continue the answer inside the chunks it reads (0 = off).")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated (JSON: one event per line).")
@output_options
@pass_state
def ask(state: State, question: str, max_tokens: int, temperature: float, top_p: float, seed: int | None,
        citations: int, copy_bias: float, stream: bool):
    """Answer a question from the whole memory, with citations.

    \b
    hsa-memory --memory ~/mem ask "Where does Anna live?" --stream
    """
    from hsa_memory import Answer

    mem = state.memory()
    options = dict(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, citations=citations,
                   copy_bias=copy_bias)
    answer = Answer("")
    if stream:
        for piece in mem.ask_stream(question, answer=answer, **options):
            if state.json:
                click.echo(json.dumps({"type": "delta", "text": piece}, ensure_ascii=False))
            else:
                click.echo(piece, nl=False)
        if state.json:
            click.echo(json.dumps({"type": "answer", **plain(answer)}, ensure_ascii=False))
            return
        click.echo()
    else:
        answer = mem.ask(question, **options)
        if state.json:
            emit(state, answer)
            return
        click.echo(answer.text)
    if answer.citations:
        click.echo(f"\nCitations:\n{_listing(answer.citations, 'weight')}")


@click.command()
@click.argument("query")
@click.option("-k", "--k", "k", type=click.IntRange(1), default=8, show_default=True, help="Most chunks to return.")
@output_options
@pass_state
def search(state: State, query: str, k: int):
    """List the chunks retrieval routes a query to (no generation).

    \b
    hsa-memory --memory ~/mem search "Anna Lisbon" -k 3
    """
    hits = state.memory().search(query, k=k)
    emit(state, hits, text=_listing(hits, "score") if hits else "no chunks found (the memory makes one per 64 tokens)")


COMMANDS = [ask, search]
