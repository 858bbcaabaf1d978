"""Fixtures for the service tests: the tiny model, settings in a temp dir, API keys, a real uvicorn on 127.0.0.1."""
from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
import torch

from hsa_memory.model import get_preset
from hsa_memory.model.loading import load_model
from hsa_memory.service import Settings, create_app

PG_DSN = dict(host="127.0.0.1", port=5432, dbname="test", user="postgres", connect_timeout=2)
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def tiny_loaded():
    """The tiny preset (random weights, real tokenizer), shared by every app in the session."""
    torch.manual_seed(42)
    return load_model(get_preset("tiny"), checkpoint=None)


def make_settings(data_dir, **overrides) -> Settings:
    """Test settings: generous rate limits and short asks unless a test says otherwise."""
    values = dict(data_dir=data_dir, model="tiny", rate_per_second=1000.0, rate_burst=1000, max_new_tokens=16,
                  max_concurrent_asks=4, ask_wait_seconds=5.0, worker_threads=4)
    return Settings(**{**values, **overrides})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LiveServer:
    """A uvicorn server for ``app`` on a free port of 127.0.0.1, run in a thread."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.socket.close()

    def client(self, token: str | None = None, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(token) if token else {}, timeout=120, **options)


@dataclass
class Service:
    """An app, its settings and two tenants' keys."""

    app: object
    settings: Settings
    key_a: str
    key_b: str

    def keys(self, tenant: str) -> str:
        return self.app.state.service.catalog.create_key(tenant)[1]


def make_service(data_dir, loaded, **overrides) -> Service:
    settings = make_settings(data_dir, **overrides)
    app = create_app(settings, model=loaded)
    catalog = app.state.service.catalog
    return Service(app, settings, catalog.create_key("tenant-a")[1], catalog.create_key("tenant-b")[1])


@pytest.fixture
def service(tmp_path, tiny_loaded) -> Service:
    return make_service(tmp_path / "svc", tiny_loaded)


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_loaded):
    """One real uvicorn for a test module, with two tenants' keys."""
    svc = make_service(tmp_path_factory.mktemp("live"), tiny_loaded)
    with LiveServer(svc.app) as server:
        server.service = svc
        yield server


def _pg_reason() -> str | None:
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    try:
        psycopg2.connect(**PG_DSN).close()
    except Exception as exc:  # any failure to connect means: no usable server
        return f"no PostgreSQL server answers on 127.0.0.1:5432 ({exc.__class__.__name__})"
    return None


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL schema (dropped afterwards) as a catalog URL, so runs never see each other's tables."""
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    import psycopg2

    schema = f"svc_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(**PG_DSN)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}", schema, conn
    finally:
        conn.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()
