"""migrations.py: the versioned catalog schema (SQLite and PostgreSQL).

Scenarios:
- a fresh catalog reaches the latest version, and its tables and columns are exactly the models';
- a store whose catalog is at v1 (as v1 wrote it) opens, is upgraded in place, keeps its data and
  verifies; the new column gets its default;
- a catalog newer than this code is refused with CatalogVersionError, untouched.
"""
import pytest
from sqlalchemy import inspect, text

from hsa_memory.store import MemoryStore
from hsa_memory.store.catalog import Base, Catalog, sqlite_url
from hsa_memory.store.errors import CatalogVersionError
from hsa_memory.store.migrations import LATEST, migrate, schema_version

from .fakes import LAYOUT, Feeder


def columns(catalog):
    with catalog.read() as conn:
        insp = inspect(conn)
        return {t: sorted(c["name"] for c in insp.get_columns(t)) for t in insp.get_table_names()}


def catalog_for(tmp_path, catalog_url):
    return Catalog(catalog_url or sqlite_url(str(tmp_path / "c.sqlite")))


def test_fresh_catalog_matches_models(tmp_path, catalog_url):
    catalog = catalog_for(tmp_path, catalog_url)
    try:
        assert migrate(catalog) == LATEST
        assert migrate(catalog) == LATEST  # idempotent
        models = {t.name: sorted(c.name for c in t.columns) for t in Base.metadata.sorted_tables}
        assert columns(catalog) == models
    finally:
        catalog.close()


def test_upgrade_from_v1(tmp_path, catalog_url):
    # what v1 created, for comparison with the downgraded store below
    v1 = catalog_for(tmp_path, None if catalog_url is None else catalog_url)
    if catalog_url is None:
        assert migrate(v1, target=1) == 1
        v1_columns = columns(v1)
    v1.close()

    store = MemoryStore.create(tmp_path / "mem", LAYOUT, "m", "h", catalog_url=catalog_url)
    Feeder(store).events_and_chunks(3)
    url = store._catalog.url
    store.close()
    # take the catalog back to v1 as v1 code would have left it
    catalog = Catalog(url)
    with catalog.write() as conn:
        conn.execute(text("DROP TABLE snapshots"))
        conn.execute(text("ALTER TABLE memories DROP COLUMN seq_floor"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 2"))
        assert schema_version(conn) == 1
    if catalog_url is None:
        assert columns(catalog) == v1_columns
    catalog.close()

    with MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url) as upgraded:
        with upgraded._catalog.read() as conn:
            assert schema_version(conn) == LATEST
            assert conn.execute(text("SELECT seq_floor FROM memories")).scalar() == 0
        assert upgraded.landmarks()[1].tolist() == [1, 2, 3]
        assert [e.text for e in upgraded.events()] == ["event 0", "event 1", "event 2"]
        assert upgraded.verify().ok
        upgraded.export(tmp_path / "s.hsamem")  # uses the v2 snapshots table


def test_newer_catalog_is_refused(tmp_path, catalog_url):
    store = MemoryStore.create(tmp_path / "mem", LAYOUT, "m", "h", catalog_url=catalog_url)
    url = store._catalog.url
    store.close()
    catalog = Catalog(url)
    with catalog.write() as conn:
        conn.execute(text("INSERT INTO schema_version (version, applied_us) VALUES (:v, 0)"), {"v": LATEST + 1})
    catalog.close()
    with pytest.raises(CatalogVersionError, match="upgrade hsa-memory"):
        MemoryStore.open(tmp_path / "mem", catalog_url=catalog_url)
