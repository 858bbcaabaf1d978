"""Tenant isolation, over a real uvicorn: tenant B tries every route on tenant A's memory.

The routes come from the app itself, so a new endpoint fails this test until it is listed here.

Scenarios:
- every route that takes a memory id answers B exactly as it answers for an id that never existed (404);
- B's list never shows A's memories; B's snapshot import creates B's own memory;
- A's memory is unchanged afterwards, and A can still use it.
"""
from __future__ import annotations

import uuid

from fastapi.routing import iter_route_contexts

# a valid request for every route that names a memory, so only ownership can refuse it
MEMORY_ROUTES = {
    ("GET", "/v1/memories/{memory_id}"): None,
    ("DELETE", "/v1/memories/{memory_id}"): None,
    ("POST", "/v1/memories/{memory_id}/messages"): {"text": "written by tenant B"},
    ("POST", "/v1/memories/{memory_id}/messages/batch"): {"messages": [{"content": "written by tenant B"}]},
    ("POST", "/v1/memories/{memory_id}/forget"): {"chunk_ids": [1]},
    ("POST", "/v1/memories/{memory_id}/ask"): {"question": "What does A know?", "max_new_tokens": 2},
    ("POST", "/v1/memories/{memory_id}/ask/stream"): {"question": "What does A know?", "max_new_tokens": 2},
    ("POST", "/v1/memories/{memory_id}/search"): {"query": "secret"},
    ("GET", "/v1/memories/{memory_id}/stats"): None,
    ("GET", "/v1/memories/{memory_id}/export"): None,
}
# routes without a memory id, each checked below (the documentation pages hold no data)
OTHER_ROUTES = {("GET", "/v1/health"), ("GET", "/v1/memories"), ("POST", "/v1/memories"),
                ("POST", "/v1/memories/import")}
DOCS = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc")}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app routes, those of included routers too (HEAD rides along with GET)."""
    return {(method, context.path) for context in iter_route_contexts(app.routes)
            for method in context.methods or () if method != "HEAD"}


def test_every_route_is_covered(live):
    app = live.service.app
    assert app_routes(app) == set(MEMORY_ROUTES) | OTHER_ROUTES | DOCS
    documented = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert documented == set(MEMORY_ROUTES) | OTHER_ROUTES


def test_tenant_b_cannot_touch_tenant_a(live):
    svc = live.service
    with live.client(svc.key_a) as a, live.client(svc.key_b) as b:
        memory_id = a.post("/v1/memories", json={"name": "A's secrets"}).json()["id"]
        secret = {"text": "A's secret: the code is 1234. " * 10}
        a.post(f"/v1/memories/{memory_id}/messages", json=secret).raise_for_status()
        before = a.get(f"/v1/memories/{memory_id}/stats").json()
        snapshot = a.get(f"/v1/memories/{memory_id}/export").content
        missing = str(uuid.uuid4())

        # delete goes last so the other routes meet a live memory
        for (method, path), body in sorted(MEMORY_ROUTES.items(), key=lambda item: item[0][0] == "DELETE"):
            theirs = b.request(method, path.format(memory_id=memory_id), json=body)
            nobody = b.request(method, path.format(memory_id=missing), json=body)
            assert theirs.status_code == 404, (method, path, theirs.status_code, theirs.text)
            assert theirs.headers["content-type"] == "application/json"
            assert theirs.json() == {"error": {**nobody.json()["error"], "message": nobody.json()["error"]["message"]
                                               .replace(missing, memory_id)}}, (method, path)
            assert "secret" not in theirs.text

        assert memory_id not in b.get("/v1/memories").text
        assert b.get("/v1/health").status_code == 200
        b_memory = b.post("/v1/memories", json={"name": "B's"}).json()["id"]
        imported = b.post("/v1/memories/import", content=snapshot).json()["id"]
        assert {m["id"] for m in b.get("/v1/memories").json()["memories"]} >= {b_memory, imported}
        assert not {b_memory, imported} & {m["id"] for m in a.get("/v1/memories").json()["memories"]}
        for other in (b_memory, imported):
            assert a.get(f"/v1/memories/{other}").status_code == 404
            assert a.delete(f"/v1/memories/{other}").status_code == 404

        after = a.get(f"/v1/memories/{memory_id}/stats").json()
        assert {k: after[k] for k in ("last_seq", "chunks", "forgotten_chunks", "tokens")} == \
               {k: before[k] for k in ("last_seq", "chunks", "forgotten_chunks", "tokens")}
        assert memory_id in [m["id"] for m in a.get("/v1/memories").json()["memories"]]
        assert a.post(f"/v1/memories/{memory_id}/search", json={"query": "code"}).status_code == 200
