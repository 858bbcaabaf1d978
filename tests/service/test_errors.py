"""The one error handler.

Scenarios:
- each typed library error maps to its status and type, with server paths scrubbed from the message;
- an unexpected exception inside a route, over a real uvicorn, gives a 500 whose body holds no traceback,
  exception text or path; a library error that is not typed does the same;
- an error after an SSE stream started arrives as an ``event: error`` frame.
"""
from __future__ import annotations

import json

import pytest

from hsa_memory import Memory
from hsa_memory.errors import HsaMemoryError, InvalidInput, MemoryClosed, ModelMismatch
from hsa_memory.service.errors import ErrorMapper, field_of
from hsa_memory.store.errors import (ChunkNotFound, CatalogVersionError, InvalidForget, SnapshotChecksumError,
                                     SnapshotTruncated, StoreCorrupted, StoreLocked, StoreNotFound, UnsafeSnapshotPath)

SECRET = "s3cr3t-detail"


@pytest.mark.parametrize("exc,status,kind", [
    (InvalidInput("text", "is empty"), 422, "invalid_input"),
    (InvalidForget("nothing to forget"), 422, "invalid_input"),
    (ChunkNotFound([7]), 404, "not_found"),
    (StoreNotFound("/data/memories/x missing"), 404, "not_found"),
    (ModelMismatch("encoded by other weights"), 409, "model_mismatch"),
    (SnapshotChecksumError("kv.bin does not match"), 400, "invalid_snapshot"),
    (SnapshotTruncated("ends early"), 400, "invalid_snapshot"),
    (UnsafeSnapshotPath("../../etc"), 400, "invalid_snapshot"),
    (StoreLocked("held"), 503, "store_locked"),
    (MemoryClosed("closed"), 503, "busy"),
    (StoreCorrupted(SECRET), 500, "internal_error"),
    (CatalogVersionError(SECRET), 500, "internal_error"),
    (HsaMemoryError(SECRET), 500, "internal_error"),
    (RuntimeError(SECRET), 500, "internal_error"),
])
def test_typed_errors_map_to_statuses(tmp_path, exc, status, kind):
    got_status, body, headers = ErrorMapper(tmp_path).body(exc)
    assert (got_status, body["error"]["type"]) == (status, kind)
    assert SECRET not in json.dumps(body)
    if status == 503:
        assert headers == {"Retry-After": "1"}


def test_server_paths_are_scrubbed(tmp_path):
    mapper = ErrorMapper(tmp_path)
    status, body, _ = mapper.body(ModelMismatch(f"{tmp_path}/memories/abc was encoded by tiny, not other"))
    assert status == 409
    assert str(tmp_path) not in body["error"]["message"]
    assert body["error"]["message"].startswith("<memory> was encoded by tiny")


def test_field_names_follow_memory():
    assert field_of(("body", "messages", 3, "content")) == "messages[3].content"
    assert field_of(("query", "name")) == "name"
    assert field_of(("body",)) is None
    assert field_of(("body", "query")) == "query"


def test_internal_errors_hide_everything(live, monkeypatch, caplog):
    with live.client(live.service.key_a) as client:
        memory_id = client.post("/v1/memories", json={}).json()["id"]
        for error in (RuntimeError(f"{SECRET} at {live.service.settings.data_dir}"), HsaMemoryError(SECRET),
                      KeyError(SECRET)):
            def broken(self, query, k=8, error=error):
                raise error

            monkeypatch.setattr(Memory, "search", broken)
            response = client.post(f"/v1/memories/{memory_id}/search", json={"query": "anything"})
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert set(body) == {"error"} and body["error"]["type"] == "internal_error"
            assert body["error"]["field"] is None
            for leak in ("Traceback", SECRET, "File \"", str(live.service.settings.data_dir), "Error"):
                assert leak not in response.text, leak
        monkeypatch.undo()
        assert client.post(f"/v1/memories/{memory_id}/search", json={"query": "anything"}).status_code == 200
    # the details are in the server log, under the id the client got
    error_id = body["error"]["message"].split("(id ")[1].split(")")[0]
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)


def test_error_after_the_stream_started_is_an_sse_frame(live, monkeypatch):
    with live.client(live.service.key_a) as client:
        memory_id = client.post("/v1/memories", json={}).json()["id"]
        client.post(f"/v1/memories/{memory_id}/messages", json={"text": "hello " * 30}).raise_for_status()

        def failing_stream(self, question, **options):
            yield "partial"
            raise RuntimeError(SECRET)

        monkeypatch.setattr(Memory, "ask_stream", failing_stream)
        with client.stream("POST", f"/v1/memories/{memory_id}/ask/stream", json={"question": "q"}) as response:
            text = response.read().decode()
    assert response.status_code == 200
    assert SECRET not in text and "Traceback" not in text
    blocks = text.strip().split("\n\n")
    assert blocks[0] == 'data: {"text": "partial"}'
    assert blocks[-1].startswith("event: error\ndata: ")
    assert json.loads(blocks[-1].split("data: ", 1)[1])["error"]["type"] == "internal_error"
    assert live.service.app.state.service.slots.in_use == 0
