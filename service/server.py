"""``run``: serve the API with uvicorn (what ``hsa-memory serve`` calls)."""
from __future__ import annotations

import logging
from pathlib import Path

from .settings import Settings


def run(host: str = "127.0.0.1", port: int = 8080, catalog_url: str | None = None, data_dir: str | Path | None = None,
        model: str | None = None, log_level: str = "info", **settings) -> None:
    """Serve until interrupted. Other settings (limits, device…) come from ``settings`` keywords,
    then ``HSA_SERVICE_*`` environment variables, then defaults.

    >>> run(port=8080, catalog_url="postgresql+psycopg2://svc@db/hsa", data_dir="/srv/hsa")
    """
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Settings.from_env(catalog_url=catalog_url, data_dir=data_dir, model=model, **settings)
    # one process, one event loop: model work runs in the app's thread pool
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, workers=1, timeout_graceful_shutdown=30)
