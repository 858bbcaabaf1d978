"""store.py with several processes: writers are serialised, readers never see half a chunk.

Scenario: two processes each append events and add a chunk per event into one store at the same
time, while this process reads landmarks and K/V in a loop (SQLite and PostgreSQL). Every read
returns only whole chunks (K/V and landmark exactly those of their position); afterwards all
events of both writers are there with unique, gapless seqs, every chunk position is taken once,
and verify() passes.
"""
import subprocess
import sys
from pathlib import Path

import torch

from hsa_memory.store import MemoryStore

from .fakes import LAYOUT, expected_kv, landmark_for

CHILD = Path(__file__).with_name("concurrent_writer.py")
COUNT = 30


def check_whole(store, reads):
    rows, ids = store.landmarks()
    if not len(ids):
        return
    infos = store.chunks(ids.tolist())
    keys, values = store.get_kv(ids)
    for i, info in enumerate(infos):
        assert torch.equal(rows[i], torch.from_numpy(landmark_for(info.position)[0]))
        ek, ev = expected_kv(info.position)
        assert torch.equal(keys[i], ek) and torch.equal(values[i], ev)
    reads.append(len(ids))


def test_two_writers_and_a_reader(tmp_path, catalog_url):
    root = tmp_path / "mem"
    MemoryStore.create(root, LAYOUT, "m", "h" * 64, catalog_url=catalog_url).close()
    url = [catalog_url] if catalog_url else []
    args = lambda name: [sys.executable, str(CHILD), str(root), name, str(COUNT)] + url
    children = [subprocess.Popen(args(name), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for name in ("alpha", "beta")]
    reads: list[int] = []
    with MemoryStore.open(root, catalog_url=catalog_url) as reader:
        try:
            for child in children:
                assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()[-2000:]
            for child in children:
                child.stdin.write(b"go\n")
                child.stdin.flush()
            while any(child.poll() is None for child in children):
                check_whole(reader, reads)
            outputs = [child.communicate(timeout=60) for child in children]
        finally:
            for child in children:
                child.kill()
                child.wait()
        assert all(child.returncode == 0 for child in children), [o[1].decode()[-2000:] for o in outputs]
        acked = [[int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("E")]
                 for out, _ in outputs]
        assert len(acked[0]) == len(acked[1]) == COUNT
        assert sorted(acked[0] + acked[1]) == list(range(1, 2 * COUNT + 1))
        # the two writers really did interleave
        assert max(acked[0]) > min(acked[1]) and max(acked[1]) > min(acked[0])
        events = list(reader.events())
        assert sorted(e.metadata["writer"] for e in events) == ["alpha"] * COUNT + ["beta"] * COUNT
        ids = reader.landmarks()[1].tolist()
        assert [c.position for c in reader.chunks(ids)] == list(range(2 * COUNT))
        check_whole(reader, reads)
        assert len(reads) > 3 and reads[-1] == 2 * COUNT
        assert reader.verify().ok


def test_stats_while_another_process_removes_files(tmp_path, monkeypatch):
    """stats() walks the directory without the writer lock; a file that a compaction in another
    process removes between the listing and its stat() is skipped (was FileNotFoundError)."""
    root = tmp_path / "mem"
    MemoryStore.create(root, LAYOUT, "m", "h" * 64).close()
    doomed = root / "kv" / "warm" / "000000000001.seg"
    real_is_file = Path.is_file

    def is_file_then_vanish(self):
        answer = real_is_file(self)
        if self == doomed:
            self.unlink()  # the other process's compaction, right after the listing saw it
        return answer

    with MemoryStore.open(root) as store:
        doomed.write_bytes(b"x" * 10)  # written after open, which sweeps files no catalog row names
        monkeypatch.setattr(Path, "is_file", is_file_then_vanish)
        stats = store.stats()
    assert not doomed.exists() and stats["disk_bytes"].get("kv/warm", 0) == 0
