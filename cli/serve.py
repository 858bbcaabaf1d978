"""``serve``: the HTTP memory service (``hsa_memory.service.run``), started from the command line."""
from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .state import State, output_options, pass_state


def _explicit(ctx: click.Context, name: str, value):
    """A group option's value when the user gave it (flag or env), else None: the service then decides."""
    root = ctx.find_root()
    return value if root.get_parameter_source(name) not in (None, ParameterSource.DEFAULT) else None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the service keeps its memories (default: HSA_SERVICE_DATA_DIR or "
                   "~/.local/share/hsa-memory/service).")
@click.option("--catalog-url", default=None,
              help="SQLAlchemy URL of a shared catalog (PostgreSQL); default: HSA_SERVICE_CATALOG_URL or SQLite.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@output_options
@pass_state
@click.pass_context
def serve(ctx: click.Context, state: State, host: str, port: int, data_dir: Path | None, catalog_url: str | None,
          log_level: str):
    """Run the HTTP memory service until interrupted.

    \b
    hsa-memory serve --host 0.0.0.0 --port 8080 --data-dir /srv/hsa
    """
    try:
        import hsa_memory.service as service

        run = service.run
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(f"the HTTP service is not available ({exc}); install it with "
                                   "`pip install 'hsa-memory[service]'`") from exc
    options = {"host": host, "port": port, "catalog_url": catalog_url, "data_dir": data_dir, "log_level": log_level}
    model, device = _explicit(ctx, "model", state.model), _explicit(ctx, "device", state.device)
    options.update({k: v for k, v in (("model", model), ("device", device)) if v is not None})
    run(**options)


COMMANDS = [serve]
