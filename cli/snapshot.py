"""``export`` and ``import``: a memory as one verified ``.hsamem`` file."""
from __future__ import annotations

from pathlib import Path

import click

from .state import State, emit, output_options, pass_state


@click.command()
@click.argument("snapshot", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing file.")
@output_options
@pass_state
def export(state: State, snapshot: Path, force: bool):
    """Write the memory to one snapshot file.

    \b
    hsa-memory --memory ~/mem export backup.hsamem
    """
    if snapshot.exists() and not force:
        raise click.ClickException(f"{snapshot} exists; pass --force to replace it")
    path = state.memory().export(snapshot)
    emit(state, {"snapshot": path, "bytes": path.stat().st_size},
         text=f"exported {state.path} to {path} ({path.stat().st_size:,} bytes)")


@click.command(name="import")
@click.argument("snapshot", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reencode", is_flag=True, help="Take only the events and re-encode them with this model "
                                               "(for snapshots made with other weights).")
@output_options
@pass_state
def import_(state: State, snapshot: Path, reencode: bool):
    """Create the memory from a snapshot, verified before writing.

    \b
    hsa-memory --memory ~/restored import backup.hsamem
    """
    from hsa_memory import Memory

    target = state.require_path()
    mem = Memory.import_snapshot(snapshot, target, reencode=reencode, model=state.model_for_memory(),
                                 device=state.device)
    state.adopt(mem)
    stats = mem.stats()
    emit(state, {"memory": target, "snapshot": snapshot, "events": stats["last_seq"], "chunks": stats["chunks"]},
         text=f"imported {snapshot} into {target}: {stats['last_seq']} events, {stats['chunks']} chunks")


COMMANDS = [export, import_]
