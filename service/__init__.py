"""The HTTP memory service: REST v1 over ``Memory`` with tenants, API keys and limits.

>>> from hsa_memory.service import Settings, create_app, run
>>> run(host="127.0.0.1", port=8080, catalog_url=None, data_dir="~/hsa-service")
"""
from .server import run
from .settings import Settings


def create_app(settings: Settings | None = None, model=None):
    """The FastAPI app; see ``hsa_memory.service.app.create_app``."""
    from .app import create_app as _create_app

    return _create_app(settings, model=model)


__all__ = ["Settings", "create_app", "run"]
