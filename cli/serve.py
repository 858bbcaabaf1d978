"""``serve``: the HTTP memory service (``hsa_memory.service``), started from the command line."""
from __future__ import annotations

import inspect

import click

from .state import State, output_options, pass_state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--catalog-url", envvar="HSA_MEMORY_CATALOG_URL", show_envvar=True,
              help="SQLAlchemy URL of a shared catalog (PostgreSQL); default: SQLite files.")
@output_options
@pass_state
def serve(state: State, host: str, port: int, catalog_url: str | None):
    """Run the HTTP memory service until interrupted.

    \b
    hsa-memory serve --host 0.0.0.0 --port 8000
    """
    try:
        import hsa_memory.service as service
    except ImportError as exc:
        raise click.ClickException(f"the service cannot start ({exc}); install it with "
                                   "`pip install 'hsa-memory[service]'`") from exc
    run = getattr(service, "run", None)
    if not callable(run):
        raise click.ClickException("the HTTP service is not available in this version of hsa-memory "
                                   "(hsa_memory.service has no run()); use the Python API or the CLI meanwhile")
    options = {"host": host, "port": port, "catalog_url": catalog_url}
    accepted = inspect.signature(run).parameters
    options.update({name: value for name, value in (("model", state.model), ("device", state.device))
                    if name in accepted})
    run(**options)


COMMANDS = [serve]
