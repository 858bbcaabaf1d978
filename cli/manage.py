"""``forget``, ``stats`` and ``verify``: looking after a memory."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from .state import State, emit, output_options, pass_state


class Time(click.ParamType):
    """ISO 8601 (``2025-05-01``, ``2025-05-01T10:00:00Z``) or epoch seconds; naive times are UTC."""

    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromtimestamp(float(value), timezone.utc)
        except (ValueError, OverflowError, OSError):
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is neither an ISO 8601 time (2025-05-01T10:00:00Z) nor epoch seconds", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_where(items: tuple[str, ...]) -> dict | None:
    """``key=value`` pairs; a value is read as JSON when it parses (42, true, "42"), else as a string."""
    if not items:
        return None
    where = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--where'")
        try:
            where[key] = json.loads(raw)
        except ValueError:
            where[key] = raw
    return where


@click.command()
@click.option("--chunk", "chunks", type=click.IntRange(1), multiple=True, help="A chunk id (repeatable).")
@click.option("--before", type=Time(), help="Events before this time.")
@click.option("--after", type=Time(), help="Events at or after this time.")
@click.option("--where", "where_items", multiple=True, metavar="KEY=VALUE",
              help="Events whose metadata has KEY=VALUE (repeatable; all must hold).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@output_options
@pass_state
def forget(state: State, chunks: tuple[int, ...], before: datetime | None, after: datetime | None,
           where_items: tuple[str, ...], yes: bool):
    """Forget chunks and events by id, time or metadata.

    \b
    hsa-memory --memory ~/mem forget --where session=s1 --before 2025-01-01 --yes
    """
    where = parse_where(where_items)
    if not chunks and before is None and after is None and where is None:
        raise click.UsageError("give --chunk, --before, --after or --where (refusing to forget everything)")
    selectors = [f"chunks {', '.join(map(str, chunks))}" if chunks else "",
                 f"events after {after.isoformat()}" if after else "",
                 f"events before {before.isoformat()}" if before else "",
                 f"events with metadata {json.dumps(where)}" if where else ""]
    description = "; ".join(s for s in selectors if s)
    if not yes:
        click.confirm(f"Forget {description} from {state.require_path()}? Chunks holding them and the other "
                      "events in those chunks go too", abort=True, err=True)
    from hsa_memory.store.errors import ChunkNotFound

    try:
        count = state.memory().forget(chunk_ids=list(chunks) or None, before=before, after=after, where=where)
    except ChunkNotFound as exc:
        raise click.ClickException(f"no chunk {', '.join(map(str, exc.chunk_ids))} in {state.path}; "
                                   "`hsa-memory search` shows chunk ids") from exc
    emit(state, {"forgotten": count}, text=f"forgot {count} chunks and events")


@click.command()
@output_options
@pass_state
def stats(state: State):
    """Show counts and sizes of the memory.

    \b
    hsa-memory --memory ~/mem stats --json
    """
    emit(state, state.memory().stats())


@click.command()
@output_options
@pass_state
def verify(state: State):
    """Check every checksum; exit 1 on problems.

    \b
    hsa-memory --memory ~/mem verify
    """
    report = state.memory().verify()
    result = {"ok": report.ok, "problems": report.problems, "checked": report.checked}
    lines = [f"checked: {json.dumps(report.checked)}"] + [f"problem: {p}" for p in report.problems]
    emit(state, result, text="\n".join(lines + (["ok"] if report.ok else [])))
    if not report.ok:
        raise click.ClickException(f"verify found {len(report.problems)} problems in {state.path}; restore a "
                                   "snapshot (`hsa-memory import`) or re-ingest the sources")


COMMANDS = [forget, stats, verify]
