"""Limits, against a real uvicorn with small limits.

Scenarios:
- a body over the limit gets 413 at once from its Content-Length, and part-way through a chunked upload;
- a message over the append length, or a batch over the batch size, gets 422;
- a key past its token bucket gets 429 with Retry-After, another key is unaffected;
- asks past the concurrency limit get 503 with Retry-After, and the slot frees when the ask ends;
- the token bucket refills at its rate (fake clock).
"""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from hsa_memory import Memory
from hsa_memory.service.errors import RateLimited
from hsa_memory.service.limits import RateLimiter

from .conftest import LiveServer, bearer, make_service


@pytest.fixture(scope="module")
def small(tmp_path_factory, tiny_loaded):
    svc = make_service(tmp_path_factory.mktemp("small"), tiny_loaded, max_body_bytes=4096, max_import_bytes=64 * 1024,
                       max_append_chars=1000, max_batch_messages=3, max_concurrent_asks=1, ask_wait_seconds=0.2,
                       max_new_tokens=64)
    with LiveServer(svc.app) as server:
        server.service = svc
        with server.client(svc.key_a) as client:
            server.memory_id = client.post("/v1/memories", json={}).json()["id"]
        yield server


def test_body_over_the_limit_gets_413_from_content_length(small):
    with small.client(small.service.key_a) as client:
        response = client.post(f"/v1/memories/{small.memory_id}/messages", json={"text": "x" * 5000})
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "payload_too_large"
        response = client.post("/v1/memories/import", content=b"\0" * (65 * 1024))
        assert response.status_code == 413


def test_chunked_upload_is_cut_off_past_the_limit(small):
    sent, total = 0, 64 * 1024 * 1024

    def body():
        nonlocal sent
        while sent < total:
            sent += 8192
            yield b"\0" * 8192

    with small.client(small.service.key_a) as client:
        response = client.post("/v1/memories/import", content=body())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413 and response.json()["error"]["type"] == "payload_too_large"
    # the server answered long before the client could send it all
    assert sent < total // 4
    assert list(small.service.settings.uploads_dir.iterdir()) == []

    def json_body():
        yield b'{"text": "'
        for _ in range(8):
            yield b"y" * 1024
        yield b'"}'

    with small.client(small.service.key_a) as client:
        response = client.post(f"/v1/memories/{small.memory_id}/messages", content=json_body(),
                               headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_append_length_and_batch_size(small):
    with small.client(small.service.key_a) as client:
        base = f"/v1/memories/{small.memory_id}/messages"
        response = client.post(base, json={"text": "z" * 1001})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "text"
        assert "1,001 characters" in response.json()["error"]["message"]
        response = client.post(f"{base}/batch", json={"messages": [{"content": "a"}] * 4})
        assert response.status_code == 422 and response.json()["error"]["field"] == "messages"
        assert client.get(f"/v1/memories/{small.memory_id}/stats").json()["last_seq"] == 0


def test_rate_limit_per_key(tmp_path, tiny_loaded):
    svc = make_service(tmp_path / "svc", tiny_loaded, rate_per_second=0.5, rate_burst=3)
    with LiveServer(svc.app) as server, server.client() as client:
        statuses = [client.get("/v1/memories", headers=bearer(svc.key_a)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/v1/memories", headers=bearer(svc.key_a))
        assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert client.get("/v1/memories", headers=bearer(svc.key_b)).status_code == 200


def test_concurrent_asks_past_the_limit_get_503(small, monkeypatch):
    base = f"/v1/memories/{small.memory_id}"
    with small.client(small.service.key_a) as client:
        client.post(f"{base}/messages", json={"text": "Some text to read. " * 10}).raise_for_status()
    first_piece, release = threading.Event(), threading.Event()
    done = {}
    real_ask_stream = Memory.ask_stream

    def held_ask_stream(self, *args, **kwargs):
        # the real stream, held open after its pieces until the test has sent its second ask: a short
        # answer (the tiny model may stop at <|im_end|> at once) must not free the slot too early
        yield from real_ask_stream(self, *args, **kwargs)
        release.wait(60)

    monkeypatch.setattr(Memory, "ask_stream", held_ask_stream)

    def long_stream():
        with small.client(small.service.key_a) as client:
            with client.stream("POST", f"{base}/ask/stream", json={"question": "Go on.", "max_new_tokens": 64}) as r:
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        first_piece.set()
                done["status"] = r.status_code

    worker = threading.Thread(target=long_stream)
    worker.start()
    try:
        assert first_piece.wait(120)
        with small.client(small.service.key_a) as client:
            busy = client.post(f"{base}/ask", json={"question": "And?", "max_new_tokens": 1})
    finally:
        release.set()
        worker.join()
    assert done["status"] == 200
    assert busy.status_code == 503 and busy.json()["error"]["type"] == "busy"
    assert busy.headers["retry-after"] == "1"
    with small.client(small.service.key_a) as client:
        assert client.post(f"{base}/ask", json={"question": "And?", "max_new_tokens": 1}).status_code == 200
    assert small.service.app.state.service.slots.in_use == 0


def test_token_bucket_refills_at_its_rate(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("hsa_memory.service.limits.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(rate=2.0, burst=2)
    limiter.take("k")
    limiter.take("k")
    with pytest.raises(RateLimited) as caught:
        limiter.take("k")
    assert caught.value.headers == {"Retry-After": "1"}
    clock[0] += 0.5
    limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")
    limiter.take("other")
    clock[0] += 60
    limiter.take("k")
    limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")


def test_slow_clients_do_not_hold_the_loop(small):
    # a client that sends half a body and stalls must not block others
    import socket

    host, port = small.url.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\nAuthorization: Bearer " + small.service.key_a.encode() + b"\r\n\r\n{")
    try:
        started = time.perf_counter()
        assert httpx.get(f"{small.url}/v1/health", timeout=10).status_code == 200
        assert time.perf_counter() - started < 1.0
    finally:
        stalled.close()
