"""Open memories of a process.

Scenarios:
- one Memory object per memory id, and one model object shared by all of them;
- past max_open_memories the least recently used idle memory closes, and reopens on its next use;
- a memory in use is never evicted; delete waits for its running request, then removes the files;
- after close the pool starts again on the next call (an app whose lifespan runs twice);
- settings come from HSA_SERVICE_* variables, typed.
"""
from __future__ import annotations

import threading
import time

import pytest

from hsa_memory.service import Settings
from hsa_memory.service.pool import MemoryPool

from .conftest import make_settings

IDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]


@pytest.fixture
def pool(tmp_path, tiny_loaded):
    pool = MemoryPool(make_settings(tmp_path, max_open_memories=2), tiny_loaded)
    yield pool
    pool.close()


def test_one_memory_per_id_and_one_model(pool, tiny_loaded):
    pool.create(IDS[0])
    pool.create(IDS[1])
    with pool.lease(IDS[0]) as a, pool.lease(IDS[0]) as again, pool.lease(IDS[1]) as b:
        assert a is again and a is not b
        assert a.loaded is b.loaded is tiny_loaded


def test_least_recently_used_idle_memory_closes(pool):
    for memory_id in IDS[:3]:
        pool.create(memory_id)
    assert pool.open_count == 2
    with pool.lease(IDS[1]) as kept:
        pass
    pool.call_blocking(IDS[2], lambda m: m.append("hello there"))
    with pool.lease(IDS[0]) as reopened:
        assert pool.open_count == 2
        assert reopened.stats()["last_seq"] == 0
    assert kept._closed
    with pool.lease(IDS[1]) as back:
        assert back is not kept and not back._closed


def test_memories_in_use_are_not_evicted(pool):
    for memory_id in IDS[:2]:
        pool.create(memory_id)
    with pool.lease(IDS[0]) as first, pool.lease(IDS[1]) as second:
        pool.create(IDS[2])
        assert pool.open_count == 3
        assert not first._closed and not second._closed
    with pool.lease(IDS[2]):
        pass
    assert pool.open_count == 2


def test_delete_waits_for_running_requests(pool):
    pool.create(IDS[0])
    leased, release, order = threading.Event(), threading.Event(), []

    def request():
        with pool.lease(IDS[0]) as memory:
            leased.set()
            release.wait(30)
            order.append(("request done", memory._closed))

    worker = threading.Thread(target=request)
    worker.start()
    leased.wait(30)
    deleter = threading.Thread(target=lambda: (pool.destroy(IDS[0]), order.append(("deleted", None))))
    deleter.start()
    time.sleep(0.2)
    assert order == [] and pool.path(IDS[0]).exists()
    release.set()
    worker.join()
    deleter.join()
    assert order == [("request done", False), ("deleted", None)]
    assert not pool.path(IDS[0]).exists()


def test_pool_restarts_after_close(pool):
    pool.create(IDS[0])
    pool.call_blocking(IDS[0], lambda m: m.append("before the restart " * 20))
    pool.close()
    assert pool.open_count == 0
    assert pool.executor.submit(lambda: 41 + 1).result() == 42
    assert pool.call_blocking(IDS[0], lambda m: m.stats()["last_seq"]) == 1


def test_settings_from_environment(tmp_path):
    env = {"HSA_SERVICE_DATA_DIR": str(tmp_path), "HSA_SERVICE_RATE_PER_SECOND": "2.5",
           "HSA_SERVICE_MAX_CONCURRENT_ASKS": "3", "HSA_SERVICE_MODEL": "tiny"}
    settings = Settings.from_env(env, catalog_url="postgresql://x/y")
    assert (settings.data_dir, settings.rate_per_second, settings.max_concurrent_asks, settings.model) == \
        (tmp_path, 2.5, 3, "tiny")
    assert settings.service_catalog_url == "postgresql://x/y"
    assert Settings.from_env({"HSA_SERVICE_DATA_DIR": str(tmp_path)}).service_catalog_url == \
        f"sqlite:///{tmp_path / 'service.sqlite'}"
    with pytest.raises(ValueError, match="HSA_SERVICE_RATE_BURST='lots' is not a valid int"):
        Settings.from_env({"HSA_SERVICE_RATE_BURST": "lots"})
