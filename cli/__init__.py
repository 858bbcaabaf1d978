"""The ``hsa-memory`` command: a thin click layer over ``hsa_memory.Memory``.

Commands live in topic files (``ingest.py``, ``query.py``, ``manage.py``, ``snapshot.py``,
``evaluate.py``, ``serve.py``); torch is imported inside them, so ``--help`` stays instant.
"""
from __future__ import annotations

from pathlib import Path

import click

from hsa_memory import __version__
from hsa_memory.errors import HsaMemoryError

from .state import DEFAULT_MODEL, State

EPILOG = """\b
Exit codes: 0 success; 1 an error of the library or of the input
(printed as "Error: ..."), or `verify` found problems; 2 a usage mistake.

\b
Shell completion (bash; use zsh_source or fish_source for those shells):
  eval "$(_HSA_MEMORY_COMPLETE=bash_source hsa-memory)"
"""


class MemoryGroup(click.Group):
    """Turns the library's typed errors (and failed file operations) into ``Error: …`` with exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HsaMemoryError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc


@click.group(name="hsa-memory", cls=MemoryGroup, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--memory", "-m", "memory_dir", type=click.Path(file_okay=False, path_type=Path),
              envvar=["HSA_MEMORY_DIR", "HSA_MEMORY"], show_envvar=True, help="The memory directory.")
@click.option("--model", default=DEFAULT_MODEL, envvar="HSA_MEMORY_MODEL", show_envvar=True, show_default=True,
              help="Model preset or base path; `tiny` (random weights) is for tests.")
@click.option("--device", default="auto", envvar="HSA_MEMORY_DEVICE", show_envvar=True, show_default=True,
              help="`auto`, `cpu`, `cuda`, `cuda:1`, …")
@click.option("--json", "json_output", is_flag=True, help="Print JSON on stdout instead of text.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or warnings on stderr.")
@click.version_option(__version__, "--version", "-V", prog_name="hsa-memory")
@click.pass_context
def main(ctx: click.Context, memory_dir: Path | None, model: str, device: str, json_output: bool, quiet: bool):
    """Lifelong memory for AI agents: ingest conversations, ask questions about all of them.

    \b
    hsa-memory --memory ~/agent-memory ingest chats/
    hsa-memory --memory ~/agent-memory ask "Where does Anna live?"
    """
    ctx.obj = State(memory_dir.expanduser() if memory_dir else None, model, device, json_output, quiet)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from . import evaluate, ingest, manage, query, serve, snapshot

    for module in (ingest, query, manage, snapshot, evaluate, serve):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
