"""``create_app``: the FastAPI application, its limits, error handler and the objects routes share."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Callable, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

import hsa_memory
from hsa_memory.errors import HsaMemoryError

from .catalog import OwnedMemory, ServiceCatalog
from .errors import CatchAll, ErrorMapper, InvalidRequest, ServiceError
from .limits import AskSlots, BodyLimit, RateLimiter
from .pool import MemoryPool, load_model
from .routes import router
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
IMPORT_PATH = "/v1/memories/import"
DEFAULT_NEW_TOKENS = 128


class ServiceState:
    """What every request shares: settings, the service catalog, open memories, limits, the error mapper."""

    def __init__(self, settings: Settings, loaded):
        self.settings = settings
        self.loaded = loaded
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = ServiceCatalog(settings.service_catalog_url)
        self.pool = MemoryPool(settings, loaded)
        self.limiter = RateLimiter(settings.rate_per_second, settings.rate_burst)
        self.slots = AskSlots(settings.max_concurrent_asks, settings.ask_wait_seconds)
        self.mapper = ErrorMapper(settings.data_dir)

    async def adopt(self, tenant: str, memory_id: str, name: str) -> OwnedMemory:
        """Record the tenant as owner of a memory just made; without the record the memory is removed again."""
        try:
            return await self.pool.run(self.catalog.add_memory, tenant, name, memory_id)
        except BaseException:
            await self.pool.run(self.pool.destroy, memory_id)
            raise

    def check_length(self, field: str, text: str) -> None:
        if len(text) > self.settings.max_append_chars:
            raise InvalidRequest(f"has {len(text):,} characters; the limit per message is "
                                 f"{self.settings.max_append_chars:,}", field=field)

    def ask_options(self, body) -> dict:
        limit = self.settings.max_new_tokens
        if body.max_new_tokens is not None and body.max_new_tokens > limit:
            raise InvalidRequest(f"{body.max_new_tokens} is over this service's limit of {limit}",
                                 field="max_new_tokens")
        options = body.model_dump(exclude={"question"})
        options["max_new_tokens"] = body.max_new_tokens or min(DEFAULT_NEW_TOKENS, limit)
        return options

    def with_slot(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` that frees its ask slot when it ends, in whatever thread it runs."""
        def run() -> T:
            try:
                return fn()
            finally:
                self.slots.release()

        return run

    def close(self) -> None:
        self.pool.close()
        self.catalog.close()


def create_app(settings: Settings | None = None, model=None) -> FastAPI:
    """The service as an ASGI app. ``model``: a loaded model to share (tests pass the tiny one);
    by default ``settings.model`` is loaded once for the process."""
    settings = settings or Settings.from_env()
    state = ServiceState(settings, model if model is not None else load_model(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.close()

    app = FastAPI(title="hsa-memory", version=hsa_memory.__version__, lifespan=lifespan,
                  description="Lifelong memory for AI agents: append an agent's stream, ask questions about all "
                              "of it. Every request but `/v1/health` needs `Authorization: Bearer <API key>`.")
    app.state.service = state
    app.include_router(router)
    for kind in (ServiceError, RequestValidationError, HTTPException, HsaMemoryError):
        app.add_exception_handler(kind, state.mapper.handler)

    def body_limit(scope) -> int:
        if scope["path"] == IMPORT_PATH:
            return settings.max_import_bytes
        return settings.max_body_bytes

    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(CatchAll, mapper=state.mapper)
    return app
