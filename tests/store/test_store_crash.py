"""store.py under SIGKILL: nothing acknowledged is lost, nothing half-written is seen.

Scenario: a child process appends events, adds chunks, retiers, forgets and compacts in a loop
(crash_writer.py) and is SIGKILLed at a random instant, again and again (the next child continues
the same store). After every kill the store opens, verify() passes, and:
- every event whose append returned is there, unless a forget of its chunk had started;
- every chunk whose add returned is live with exactly its K/V and landmark, unless a forget of it had started;
- every forget that returned is in effect;
- the ingest cursor never points past the log.
SQLite gets 20 kills; PostgreSQL a few, as the same code path runs.
"""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hsa_memory.store import MemoryStore

from .fakes import LAYOUT, expected_kv, landmark_for

CHILD = Path(__file__).with_name("crash_writer.py")


def run_and_kill(root, seed, url, rng):
    args = [sys.executable, str(CHILD), str(root), str(seed)] + ([url] if url else [])
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = child.stdout.readline()
        assert first == b"ready\n", (first, child.stderr.read().decode()[-3000:])
        time.sleep(rng.uniform(0.02, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        out = child.stdout.read()
    finally:
        child.kill()
        child.wait()
    # a line cut by the kill has no newline and was never acknowledged
    return [line.split() for line in out.decode().split("\n")[:-1]]


@pytest.mark.parametrize("backend,kills", [("sqlite", 20), pytest.param("postgres", 5, marks=pytest.mark.postgres)])
def test_sigkill_loses_nothing_acknowledged(tmp_path, request, backend, kills):
    url = request.getfixturevalue("pg_schema_url") if backend == "postgres" else None
    root = tmp_path / "mem"
    MemoryStore.create(root, LAYOUT, "m", "h" * 64, catalog_url=url).close()
    rng = random.Random(1234)
    events, chunks, forgotten, maybe_forgotten = set(), {}, set(), set()
    for kill in range(kills):
        for op, *args in run_and_kill(root, kill, url, rng):
            if op == "E":
                events.add(int(args[0]))
            elif op == "C":
                chunks[int(args[0])] = int(args[1])
            elif op == "F?":
                maybe_forgotten.add(int(args[0]))
            elif op == "F":
                forgotten.add(int(args[0]))
        with MemoryStore.open(root, catalog_url=url) as store:
            report = store.verify()
            assert report.ok, f"after kill {kill}: {report.problems}"
            live_seqs = {e.seq for e in store.events()}
            live_ids = set(store.landmarks()[1].tolist())
            # one event per chunk: forgetting a chunk forgets exactly its event
            doomed_seqs = {chunks[c] for c in maybe_forgotten}
            missing = events - live_seqs - doomed_seqs
            assert not missing, f"after kill {kill}: acknowledged events lost: {sorted(missing)}"
            assert not {chunks[c] for c in forgotten} & live_seqs
            expected_live = set(chunks) - maybe_forgotten
            assert expected_live <= live_ids, f"after kill {kill}: chunks lost: {sorted(expected_live - live_ids)}"
            assert not forgotten & live_ids
            ids = sorted(expected_live)
            if ids:
                infos = store.chunks(ids)
                keys, values = store.get_kv(ids)
                rows, row_ids = store.landmarks()
                by_id = dict(zip(row_ids.tolist(), rows))
                for i, info in enumerate(infos):
                    ek, ev = expected_kv(info.position)
                    if info.tier == "cold":  # int8: within the codec's bound
                        scale = ek.float().abs().amax(dim=(0, 2), keepdim=True) / 127
                        assert ((keys[i].float() - ek.float()).abs() <= scale / 2 + ek.float().abs() / 256 + 1e-6).all()
                    else:
                        assert torch.equal(keys[i], ek) and torch.equal(values[i], ev)
                    assert torch.equal(by_id[info.id], torch.from_numpy(landmark_for(info.position)[0]))
            cursor, _ = store.ingest_cursor()
            assert cursor <= max(live_seqs | doomed_seqs | events | {0})
    assert len(events) > kills and len(chunks) > kills // 2
