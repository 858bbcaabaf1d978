"""The service with its catalog on the local PostgreSQL (a fresh schema per test), two servers sharing it.

Scenarios:
- a key made by the admin functions in PostgreSQL works on both servers;
- a memory created through one server is listed, appended to and read through the other;
- export from one, import through the other (the store builds the imported catalog rows in PostgreSQL);
- deleting a memory removes its rows from the store's tables as well as the service's.
"""
from __future__ import annotations

import pytest

from hsa_memory.service import create_app
from hsa_memory.service.admin import create_key

from .conftest import LiveServer, make_settings

pytestmark = pytest.mark.postgres


def count(conn, schema: str, table: str, where: str = "") -> int:
    cursor = conn.cursor()
    cursor.execute(f"SELECT count(*) FROM {schema}.{table} {where}")
    return cursor.fetchone()[0]


def test_two_servers_share_a_postgresql_catalog(tmp_path, tiny_loaded, pg_url):
    url, schema, conn = pg_url
    settings = make_settings(tmp_path / "shared", catalog_url=url)
    _, token = create_key("acme", settings=settings)
    with LiveServer(create_app(settings, model=tiny_loaded)) as one, \
            LiveServer(create_app(settings, model=tiny_loaded)) as two, \
            one.client(token) as first, two.client(token) as second:
        memory_id = first.post("/v1/memories", json={"name": "shared"}).json()["id"]
        assert [m["id"] for m in second.get("/v1/memories").json()["memories"]] == [memory_id]
        base = f"/v1/memories/{memory_id}"
        assert first.post(f"{base}/messages", json={"text": "Written through server one. " * 12}).json() == {"seq": 1}
        assert second.post(f"{base}/messages", json={"text": "Written through server two. " * 12}).json() == {"seq": 2}
        stats = second.get(f"{base}/stats").json()
        assert stats["last_seq"] == 2 and stats["chunks"] >= 1
        assert first.post(f"{base}/search", json={"query": "server"}).json()["hits"]
        assert second.post(f"{base}/ask", json={"question": "Who wrote?", "max_new_tokens": 2}).status_code == 200

        snapshot = first.get(f"{base}/export").content
        copy = second.post("/v1/memories/import", content=snapshot)
        assert copy.status_code == 201, copy.text
        copy_id = copy.json()["id"]
        assert first.get(f"/v1/memories/{copy_id}/stats").json()["last_seq"] == 2

        # the store's own tables live in the same schema, keyed by its memory ids
        assert count(conn, schema, "service_memories") == 2
        assert count(conn, schema, "memories") == 2
        chunks = count(conn, schema, "chunks")
        assert chunks >= 2
        assert first.delete(f"/v1/memories/{copy_id}").status_code == 204
        assert count(conn, schema, "service_memories") == 1
        assert count(conn, schema, "memories") == 1
        assert count(conn, schema, "chunks") == chunks // 2
        assert second.get(f"/v1/memories/{copy_id}").status_code == 404
        assert second.get(f"{base}/stats").json()["last_seq"] == 2
    assert count(conn, schema, "service_keys", "WHERE tenant_id = 'acme'") == 1


def test_a_snapshot_whose_state_does_not_open_leaves_no_rows_in_postgresql(tmp_path, tiny_loaded, pg_url):
    """With a PostgreSQL catalog the pool imported through the store directly (a workaround for an old
    Memory.import_snapshot that dropped catalog_url) and so skipped Memory's clean-up: a snapshot that passes every
    check but whose ingest state does not load answered 500 and left its directory and catalog rows behind."""
    from .test_routes import with_bad_state

    url, schema, conn = pg_url
    settings = make_settings(tmp_path / "shared", catalog_url=url)
    _, token = create_key("acme", settings=settings)
    with LiveServer(create_app(settings, model=tiny_loaded)) as one, one.client(token) as client:
        memory_id = client.post("/v1/memories", json={"name": "src"}).json()["id"]
        assert client.post(f"/v1/memories/{memory_id}/messages", json={"text": "Some text. " * 30}).status_code == 200
        snapshot = client.get(f"/v1/memories/{memory_id}/export").content
        before = sorted(p.name for p in settings.memories_dir.iterdir())
        response = client.post("/v1/memories/import", content=with_bad_state(snapshot))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_snapshot"
        assert sorted(p.name for p in settings.memories_dir.iterdir()) == before
        assert count(conn, schema, "memories") == 1 and count(conn, schema, "service_memories") == 1
