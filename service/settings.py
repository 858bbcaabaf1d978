"""Service settings: a dataclass with defaults, readable from ``HSA_SERVICE_*`` environment variables."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "HSA_SERVICE_"


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "hsa-memory" / "service"


@dataclass
class Settings:
    """Everything the service reads at start-up; ``Settings.from_env()`` fills it from the environment."""

    # memories live in data_dir/memories/<id>; the service catalog defaults to data_dir/service.sqlite
    data_dir: Path = field(default_factory=default_data_dir)
    # one SQLAlchemy URL for the service tables and every memory's catalog (PostgreSQL lets several
    # service processes share them; data_dir must then be shared storage too). None: SQLite files.
    catalog_url: str | None = None
    # a preset name ("tiny" for tests) or a path, loaded once per process
    model: str = "hsa-smollm2-135m"
    device: str = "auto"
    # JSON request bodies; snapshot uploads have their own limit
    max_body_bytes: int = 8 * 1024 * 1024
    max_import_bytes: int = 4 * 1024 * 1024 * 1024
    # characters in one appended message, messages in one batch
    max_append_chars: int = 1024 * 1024
    max_batch_messages: int = 1000
    max_new_tokens: int = 512
    # requests per second per API key (token bucket), and the bucket's size
    rate_per_second: float = 20.0
    rate_burst: int = 40
    # asks (JSON or streamed) generating at once in this process; more wait ask_wait_seconds, then 503
    max_concurrent_asks: int = 2
    ask_wait_seconds: float = 5.0
    # threads running model and store work, so the event loop never blocks on them
    worker_threads: int = 8
    # Memory objects kept open; the least recently used idle one is closed beyond this
    max_open_memories: int = 64

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Defaults, then ``HSA_SERVICE_<FIELD>`` variables (``HSA_SERVICE_CATALOG_URL``…), then ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def memories_dir(self) -> Path:
        return self.data_dir / "memories"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def service_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{self.data_dir / 'service.sqlite'}"
