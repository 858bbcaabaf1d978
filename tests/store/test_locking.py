"""locking.py: the writer lock across threads and processes.

Scenarios:
- re-entrant in one thread; another thread waits, or gets StoreLocked after its timeout;
- another process holding the lock makes us wait or time out; when that process is SIGKILLed the
  kernel releases the lock and we get it at once.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from hsa_memory.store.errors import StoreLocked
from hsa_memory.store.locking import WriterLock

HOLDER = """
import sys, time
from hsa_memory.store.locking import WriterLock
lock = WriterLock(sys.argv[1])
with lock.hold():
    print("held", flush=True)
    time.sleep(60)
"""


def test_threads(tmp_path):
    lock = WriterLock(tmp_path / "lock")
    acquired = threading.Event()
    errors = []

    def try_briefly():
        try:
            with lock.hold(timeout=0.1):
                pass
        except StoreLocked as exc:
            errors.append(exc)

    def wait_for_it():
        with lock.hold():
            acquired.set()

    with lock.hold():
        with lock.hold(timeout=0):
            assert lock.held_by_me()
        t = threading.Thread(target=try_briefly)
        t.start()
        t.join(5)
        assert len(errors) == 1 and "another thread" in str(errors[0])
        t = threading.Thread(target=wait_for_it)
        t.start()
        time.sleep(0.1)
        assert not acquired.is_set()
    assert acquired.wait(5)
    t.join(5)


def test_other_process_and_its_death(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        lock = WriterLock(tmp_path / "lock")
        with pytest.raises(StoreLocked, match="another process"):
            with lock.hold(timeout=0.2):
                pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        start = time.monotonic()
        with lock.hold(timeout=5):
            assert time.monotonic() - start < 1
    finally:
        child.kill()
        child.wait()
