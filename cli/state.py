"""What every command shares: the global options, the lazily opened ``Memory`` and ``emit()``."""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import click

DEFAULT_MODEL = "hsa-smollm2-135m"

_LOADED: dict[tuple[str, str], Any] = {}
_LOADED_LOCK = threading.Lock()


def load_named_model(name: str, device: str):
    """A preset without base weights (``tiny``) loads seeded, so every process gets the same weights.

    Any other name goes to ``Memory`` as a string: it loads (and shares) the preset or base path itself.
    """
    from hsa_memory.model import PRESETS, get_preset

    if name not in PRESETS or get_preset(name).base is not None:
        return name
    import torch

    from hsa_memory.memory import resolve_device
    from hsa_memory.model.loading import load_model

    resolved = resolve_device(device)
    key = (name, str(resolved))
    with _LOADED_LOCK:
        if key not in _LOADED:
            dtype = torch.bfloat16 if resolved.type == "cuda" else torch.float32
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                _LOADED[key] = load_model(get_preset(name), checkpoint=None, device=resolved, dtype=dtype)
        return _LOADED[key]


class State:
    """The group's options; ``memory()`` opens the memory on first use and the group closes it."""

    def __init__(self, path: Path | None, model: str, device: str, json_output: bool, quiet: bool):
        self.path = path
        self.model = model
        self.device = device
        self.json = json_output
        self._level_before: int | None = None
        self.quiet = quiet
        self._memory = None

    @property
    def quiet(self) -> bool:
        return self._quiet

    @quiet.setter
    def quiet(self, value: bool) -> None:
        # the library's own warnings (untrained weights, recovery notes) go quiet too
        self._quiet = value
        logger = logging.getLogger("hsa_memory")
        if value and self._level_before is None:
            self._level_before = logger.level
            logger.setLevel(logging.ERROR)

    def require_path(self) -> Path:
        if self.path is None:
            raise click.UsageError("no memory directory: pass --memory DIR or set HSA_MEMORY_DIR")
        return self.path

    def memory(self, create: bool = False):
        if self._memory is None:
            from hsa_memory import Memory
            from hsa_memory.store.errors import StoreNotFound

            path = self.require_path()
            try:
                self._memory = Memory(path, model=self.model_for_memory(), device=self.device, create=create)
            except StoreNotFound as exc:
                raise click.ClickException(f"no memory at {path}: create one with "
                                           f"`hsa-memory --memory {path} ingest FILE`") from exc
        return self._memory

    def adopt(self, memory) -> None:
        """Take a memory opened by the command itself (``import``) so the group closes it."""
        self._memory = memory

    def model_for_memory(self):
        return load_named_model(self.model, self.device)

    def close(self) -> None:
        try:
            if self._memory is not None:
                self._memory.close()
                self._memory = None
        finally:
            if self._level_before is not None:
                logging.getLogger("hsa_memory").setLevel(self._level_before)
                self._level_before = None

    def warn(self, message: str) -> None:
        if not self.quiet:
            click.echo(f"Warning: {message}", err=True)


pass_state = click.make_pass_decorator(State)


def _set_flag(name: str) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            setattr(ctx.ensure_object(State), name, True)

    return callback


def output_options(command: Callable) -> Callable:
    """``--json`` and ``--quiet`` on a command as well as on the group (``hsa-memory stats --json``)."""
    command = click.option("--json", "json_output", is_flag=True, expose_value=False, callback=_set_flag("json"),
                           help="Print JSON on stdout instead of text.")(command)
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_set_flag("quiet"),
                        help="No progress or warnings on stderr.")(command)


def plain(value: Any) -> Any:
    """JSON-ready copies of results: dataclasses become dicts, times ISO strings, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def render(value: Any, indent: str = "") -> str:
    """Text for a dict: ``key: value`` lines, nested dicts indented."""
    if not isinstance(value, dict):
        return f"{indent}{value}"
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:")
            lines.append(render(item, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {item}")
    return "\n".join(lines)


def emit(state: State, data: Any, text: str | None = None) -> None:
    """Print ``data`` as one line of JSON with ``--json``, else ``text`` (or ``data`` rendered)."""
    data = plain(data)
    if state.json:
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        click.echo(text if text is not None else render(data))


def one_line(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
