"""Fixtures for the store tests: a catalog URL per backend (SQLite file, PostgreSQL schema)."""
from __future__ import annotations

import uuid

import pytest

PG_DSN = dict(host="127.0.0.1", port=5432, dbname="test", user="postgres", connect_timeout=2)
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _pg_connect():
    import psycopg2

    conn = psycopg2.connect(**PG_DSN)
    conn.autocommit = True
    return conn


def _pg_reason() -> str | None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    try:
        _pg_connect().close()
    except Exception as exc:  # any failure to connect means: no usable server
        return f"no PostgreSQL server answers on 127.0.0.1:5432 ({exc.__class__.__name__})"
    return None


_PG_SKIP = _pg_reason()


@pytest.fixture
def pg_schema_url():
    """A fresh PostgreSQL schema, dropped afterwards, so test runs never see each other's tables."""
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = _pg_connect()
    conn.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        conn.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request):
    """None (the store's own SQLite file) or a PostgreSQL URL: every store test runs on both."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_schema_url")
