"""The service's own errors and the one handler that turns every error into a JSON body.

Every error response reads ``{"error": {"type": ..., "message": ..., "field": ...}}``. Library
errors map by type (``InvalidInput`` 422, not found 404, ``ModelMismatch`` 409, ``SnapshotError``
400, ``StoreLocked`` 503); anything else is a 500 whose message names only an error id, logged
with its traceback on the server. No traceback or server path ever reaches a client.
"""
from __future__ import annotations

import logging
import math
import re
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from hsa_memory.errors import HsaMemoryError, InvalidInput, MemoryClosed, ModelMismatch
from hsa_memory.store.errors import (ChunkNotFound, InvalidChunks, InvalidEvent, InvalidForget, SnapshotError,
                                     StoreExists, StoreLocked, StoreNotFound)

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ServiceError(Exception):
    """An error the service raises itself, with its HTTP status and error type."""

    status = 400
    type = "bad_request"

    def __init__(self, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.field = field
        self.headers = headers or {}


class Unauthorized(ServiceError):
    status, type = 401, "unauthorized"

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ServiceError):
    status, type = 404, "not_found"


class InvalidRequest(ServiceError):
    status, type = 422, "invalid_input"


class PayloadTooLarge(ServiceError):
    status, type = 413, "payload_too_large"


class RateLimited(ServiceError):
    status, type = 429, "rate_limited"

    def __init__(self, retry_after: float):
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"rate limit exceeded for this API key; retry in {seconds} s",
                         headers={"Retry-After": str(seconds)})


class Busy(ServiceError):
    status, type = 503, "busy"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


# statuses of Starlette's own HTTPExceptions (unknown route, wrong method, unparsable body)
RETRY = {"Retry-After": "1"}
HTTP_TYPES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              415: "unsupported_media_type"}


def field_of(location: tuple) -> str | None:
    """``("body", "messages", 3, "content")`` → ``messages[3].content``, the way ``Memory`` names fields."""
    parts = location[1:] if location and location[0] in ("body", "query", "path", "header", "cookie") else location
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


class ErrorMapper:
    """Maps any exception to (status, body, headers); server paths are scrubbed from library messages."""

    def __init__(self, data_dir: Path):
        self.scrub = re.compile(re.escape(str(Path(data_dir).resolve())) + r"\S*|" +
                                re.escape(str(Path(data_dir))) + r"\S*")

    def classify(self, exc: BaseException) -> tuple[int, str, str, str | None, dict[str, str]]:
        if isinstance(exc, ServiceError):
            return exc.status, exc.type, str(exc), exc.field, exc.headers
        if isinstance(exc, RequestValidationError):
            first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
            message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
            if first.get("type") == "json_invalid":
                # its location is a character offset into the body, not a field
                loc = tuple(first.get("loc", ()))
                where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
                reason = (first.get("ctx") or {}).get("error", "")
                return 422, "invalid_input", f"the body is not valid JSON{where}" + (f": {reason}" if reason else ""), \
                    None, {}
            return 422, "invalid_input", message, field_of(tuple(first.get("loc", ()))), {}
        if isinstance(exc, HTTPException):
            return (exc.status_code, HTTP_TYPES.get(exc.status_code, "http_error"), str(exc.detail), None,
                    dict(exc.headers or {}))
        if isinstance(exc, InvalidInput):
            return 422, "invalid_input", self.message(exc), exc.field, {}
        if isinstance(exc, (InvalidEvent, InvalidForget, InvalidChunks)):
            return 422, "invalid_input", self.message(exc), None, {}
        if isinstance(exc, ChunkNotFound):
            return 404, "not_found", self.message(exc), "chunk_ids", {}
        if isinstance(exc, StoreNotFound):
            return 404, "not_found", "memory not found", None, {}
        if isinstance(exc, ModelMismatch):
            return 409, "model_mismatch", self.message(exc), None, {}
        if isinstance(exc, StoreExists):
            return 409, "conflict", "the memory already exists", None, {}
        if isinstance(exc, SnapshotError):
            return 400, "invalid_snapshot", self.message(exc), None, {}
        if isinstance(exc, StoreLocked):
            return 503, "store_locked", "another writer holds this memory's lock; retry shortly", None, RETRY
        if isinstance(exc, MemoryClosed):
            return 503, "busy", "the memory closed during this request (deleted or shutting down); retry", None, RETRY
        error_id = secrets.token_hex(6)
        kind = "library" if isinstance(exc, HsaMemoryError) else "unexpected"
        log.error("%s error %s: %s", kind, error_id, exc.__class__.__name__, exc_info=exc)
        return 500, "internal_error", f"internal error (id {error_id}); the server log has the details", None, {}

    def message(self, exc: BaseException) -> str:
        return self.scrub.sub("<memory>", str(exc))

    def body(self, exc: BaseException) -> tuple[int, dict, dict[str, str]]:
        status, kind, message, field, headers = self.classify(exc)
        return status, {"error": {"type": kind, "message": message, "field": field}}, headers

    async def handler(self, request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = self.body(exc)
        return JSONResponse(body, status_code=status, headers=headers)


class CatchAll:
    """ASGI middleware: an unexpected exception becomes the JSON 500 here.

    Registered as an ``Exception`` handler instead, Starlette (1.x) answers from its outermost
    ServerErrorMiddleware and then re-raises, and uvicorn drops the connection before the client reads
    the answer. Added last, so it wraps every other middleware (BodyLimit turns its own error into 413).
    """

    def __init__(self, app, mapper: ErrorMapper):
        self.app = app
        self.mapper = mapper

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half an answer is on the wire: nothing sane can follow it
                raise
            status, body, headers = self.mapper.body(exc)
            await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)
