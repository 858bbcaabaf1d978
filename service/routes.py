"""REST v1. Each route checks the key and the memory's owner, then calls one ``Memory`` method in a worker thread."""
from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask

import hsa_memory
from hsa_memory import Answer

from . import schemas as s
from .catalog import ApiKey, OwnedMemory
from .errors import ErrorBody, InvalidRequest, NotFound, PayloadTooLarge, Unauthorized

ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 429, 500, 503)}
router = APIRouter(prefix="/v1", responses=ERRORS)
bearer = HTTPBearer(auto_error=False, description="an API key, `hsa_<key id>_<secret>`, from the admin CLI")
MEMORY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
# each event as OpenAPI 3.2 describes server-sent events (the item schema FastAPI's own SSE routes use)
EVENT_STREAM = {200: {
    "description": "server-sent events: `data: {\"text\": piece}` while generating, then `event: answer` with the "
                   "whole answer (AnswerOut, citations included), or `event: error` with an ErrorBody",
    "content": {"text/event-stream": {"itemSchema": {
        "type": "object", "required": ["data"],
        "properties": {"event": {"type": "string", "enum": ["message", "answer", "error"]},
                       "data": {"type": "string", "contentMediaType": "application/json"}}}}}}}
SNAPSHOT = {200: {"description": "the .hsamem snapshot", "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}}


def service(request: Request):
    return request.app.state.service


def api_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiKey:
    state = service(request)
    if credentials is None:
        raise Unauthorized("missing API key: send the header Authorization: Bearer <key>")
    key = state.catalog.authenticate(credentials.credentials)
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    state.limiter.take(key.key_id)
    return key


def owned_memory(memory_id: str, request: Request, key: ApiKey = Depends(api_key)) -> OwnedMemory:
    """The memory if this key's tenant owns it; anything else is a 404, so ids of others never show."""
    found = service(request).catalog.memory(key.tenant, memory_id) if MEMORY_ID.fullmatch(memory_id) else None
    if found is None:
        raise NotFound(f"no memory {memory_id[:64]!r} for this API key")
    return found


def memory_out(memory: OwnedMemory) -> s.MemoryOut:
    return s.MemoryOut(id=memory.id, name=memory.name,
                       created=datetime.fromtimestamp(memory.created_us / 1e6, timezone.utc))


@router.get("/health", response_model=s.Health, tags=["service"])
async def health(request: Request) -> s.Health:
    state = service(request)
    settings = state.settings
    return s.Health(status="ok", version=hsa_memory.__version__, model=state.loaded.model_id,
                    trained_weights=state.loaded.trained, open_memories=state.pool.open_count,
                    asks_running=state.slots.in_use, max_new_tokens=settings.max_new_tokens,
                    max_append_chars=settings.max_append_chars, max_batch_messages=settings.max_batch_messages)


@router.post("/memories", status_code=201, response_model=s.MemoryOut, tags=["memories"])
async def create_memory(body: s.CreateMemory, request: Request, key: ApiKey = Depends(api_key)) -> s.MemoryOut:
    state = service(request)
    memory_id = str(uuid.uuid4())
    await state.pool.run(state.pool.create, memory_id)
    return memory_out(await state.adopt(key.tenant, memory_id, body.name))


@router.get("/memories", response_model=s.MemoryList, tags=["memories"])
async def list_memories(request: Request, key: ApiKey = Depends(api_key)) -> s.MemoryList:
    state = service(request)
    return s.MemoryList(memories=[memory_out(m) for m in await state.pool.run(state.catalog.memories, key.tenant)])


@router.post("/memories/import", status_code=201, response_model=s.MemoryOut, tags=["snapshots"],
             openapi_extra=IMPORT_BODY)
async def import_memory(request: Request, name: str = Query("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"),
                        reencode: bool = Query(False, description="import only the events of a snapshot made by "
                                                                  "other weights, and re-encode them"),
                        key: ApiKey = Depends(api_key)) -> s.MemoryOut:
    """Upload a ``.hsamem`` snapshot as the raw body; it is checked completely before anything is written."""
    state = service(request)
    limit = state.settings.max_import_bytes
    state.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = state.settings.uploads_dir / f"import-{uuid.uuid4().hex}.hsamem"
    try:
        size = 0
        with open(upload, "wb") as file:
            async for piece in request.stream():
                size += len(piece)
                if size > limit:
                    raise PayloadTooLarge(f"snapshot over the limit of {limit:,} bytes")
                if piece:
                    await state.pool.run(file.write, piece)
        if size == 0:
            raise InvalidRequest("the body is empty; send the .hsamem file as the request body")
        memory_id = str(uuid.uuid4())
        await state.pool.run(state.pool.import_snapshot, memory_id, upload, reencode)
        return memory_out(await state.adopt(key.tenant, memory_id, name))
    finally:
        upload.unlink(missing_ok=True)


@router.get("/memories/{memory_id}", response_model=s.MemoryOut, tags=["memories"])
async def get_memory(memory: OwnedMemory = Depends(owned_memory)) -> s.MemoryOut:
    return memory_out(memory)


@router.delete("/memories/{memory_id}", status_code=204, response_class=Response, tags=["memories"])
async def delete_memory(request: Request, memory: OwnedMemory = Depends(owned_memory)) -> Response:
    """Delete the memory, its events, chunks and files; requests still running on it finish first."""
    state = service(request)
    await state.pool.run(state.catalog.remove_memory, memory.tenant, memory.id)
    await state.pool.run(state.pool.destroy, memory.id)
    return Response(status_code=204)


@router.post("/memories/{memory_id}/messages", response_model=s.Appended, tags=["writing"])
async def append(body: s.AppendMessage, request: Request, memory: OwnedMemory = Depends(owned_memory)) -> s.Appended:
    """Append one message; it is durable (fsync'd) when the response arrives."""
    state = service(request)
    state.check_length("text", body.text)
    seq = await state.pool.call(memory.id, lambda m: m.append(body.text, role=body.role, time=body.time,
                                                              metadata=body.metadata))
    return s.Appended(seq=seq)


@router.post("/memories/{memory_id}/messages/batch", response_model=s.AppendedBatch, tags=["writing"])
async def append_batch(body: s.AppendBatch, request: Request,
                       memory: OwnedMemory = Depends(owned_memory)) -> s.AppendedBatch:
    """Append messages in order with one fsync; all are validated before any is written."""
    state = service(request)
    if len(body.messages) > state.settings.max_batch_messages:
        raise InvalidRequest(f"{len(body.messages):,} messages; the limit per batch is "
                             f"{state.settings.max_batch_messages:,}", field="messages")
    for i, message in enumerate(body.messages):
        state.check_length(f"messages[{i}].content", message.content)
    messages = [message.model_dump(exclude_none=True) for message in body.messages]
    return s.AppendedBatch(seqs=await state.pool.call(memory.id, lambda m: m.extend(messages)))


@router.post("/memories/{memory_id}/forget", response_model=s.Forgotten, tags=["writing"])
async def forget(body: s.ForgetRequest, request: Request, memory: OwnedMemory = Depends(owned_memory)) -> s.Forgotten:
    """Forget chunks by id, and events by time range and metadata, with everything made from them."""
    state = service(request)
    count = await state.pool.call(memory.id, lambda m: m.forget(chunk_ids=body.chunk_ids, before=body.before,
                                                                after=body.after, where=body.where))
    return s.Forgotten(forgotten=count)


@router.post("/memories/{memory_id}/ask", response_model=s.AnswerOut, tags=["reading"])
async def ask(body: s.AskRequest, request: Request, memory: OwnedMemory = Depends(owned_memory)) -> s.AnswerOut:
    """Answer a question from the whole memory, with the chunks it read as citations."""
    state = service(request)
    options = state.ask_options(body)
    await state.slots.acquire()
    return answer_out(await state.pool.run(state.with_slot(
        lambda: state.pool.call_blocking(memory.id, lambda m: m.ask(body.question, **options)))))


@router.post("/memories/{memory_id}/ask/stream", response_class=StreamingResponse, responses=EVENT_STREAM,
             tags=["reading"])
async def ask_stream(body: s.AskRequest, request: Request, memory: OwnedMemory = Depends(owned_memory)):
    """The answer as server-sent events; errors before the first piece come back as ordinary JSON errors."""
    state = service(request)
    options = state.ask_options(body)
    await state.slots.acquire()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            stop.set()

    def produce(memory_obj) -> None:
        answer = Answer("")
        for piece in memory_obj.ask_stream(body.question, answer=answer, **options):
            if stop.is_set():
                return
            put(("piece", piece))
        put(("answer", answer))

    def generate() -> None:
        try:
            state.pool.call_blocking(memory.id, produce)
        except Exception as exc:
            put(("error", exc))

    state.pool.executor.submit(state.with_slot(generate))
    first = await queue.get()
    if first[0] == "error":
        raise first[1]

    async def events():
        item = first
        try:
            while True:
                kind, value = item
                if kind == "piece":
                    yield sse(None, {"text": value})
                elif kind == "answer":
                    yield sse("answer", answer_out(value).model_dump(mode="json"))
                    return
                else:
                    yield sse("error", state.mapper.body(value)[1])
                    return
                item = await queue.get()
        finally:
            stop.set()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/memories/{memory_id}/search", response_model=s.SearchOut, tags=["reading"])
async def search(body: s.SearchRequest, request: Request, memory: OwnedMemory = Depends(owned_memory)) -> s.SearchOut:
    """The chunks the model's retrieval routes the query to, without generating."""
    hits = await service(request).pool.call(memory.id, lambda m: m.search(body.query, k=body.k))
    return s.SearchOut(hits=[s.HitOut(chunk_id=h.chunk_id, text=h.text, score=h.score, roles=list(h.roles), time=h.time)
                             for h in hits])


@router.get("/memories/{memory_id}/stats", response_model=s.StatsOut, tags=["reading"])
async def stats(request: Request, memory: OwnedMemory = Depends(owned_memory)) -> s.StatsOut:
    found: dict[str, Any] = await service(request).pool.call(memory.id, lambda m: m.stats())
    return s.StatsOut(**{**found, "id": memory.id})


@router.get("/memories/{memory_id}/export", response_class=FileResponse, responses=SNAPSHOT, tags=["snapshots"])
async def export(request: Request, memory: OwnedMemory = Depends(owned_memory)) -> FileResponse:
    """Download a ``.hsamem`` snapshot of the memory (written to a temporary file, then streamed)."""
    state = service(request)
    state.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    target = state.settings.uploads_dir / f"export-{uuid.uuid4().hex}.hsamem"
    try:
        await state.pool.call(memory.id, lambda m: m.export(target))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return FileResponse(target, media_type="application/octet-stream", filename=f"{memory.id}.hsamem",
                        background=BackgroundTask(target.unlink, missing_ok=True))


def answer_out(answer: Answer) -> s.AnswerOut:
    return s.AnswerOut(text=answer.text, tokens=answer.tokens, timings=answer.timings,
                       citations=[s.CitationOut(chunk_id=c.chunk_id, text=c.text, weight=c.weight,
                                                roles=list(c.roles), time=c.time) for c in answer.citations])


def sse(event: str | None, data: dict) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"
