"""``run``: the service as its own process, the way ``hsa-memory serve`` starts it.

Scenario: start ``run(host, port, data_dir=..., model="tiny")`` in a subprocess, use it with a key
made by the admin functions, stop it with SIGINT; it exits cleanly and the append is on disk.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from hsa_memory.service import Settings
from hsa_memory.service.admin import create_key
from hsa_memory.store import MemoryStore


def test_run_serves_until_interrupted(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, token = create_key("acme", settings=Settings(data_dir=tmp_path))
    code = (f"from hsa_memory.service import run; run(host='127.0.0.1', port={port}, data_dir={str(tmp_path)!r}, "
            "model='tiny', log_level='warning')")
    server = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the server exited"
            try:
                health = httpx.get(f"{url}/v1/health", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "no answer within 120 s"
                time.sleep(0.25)
        assert health["model"] == "tiny"
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            memory_id = client.post("/v1/memories", json={"name": "served"}).json()["id"]
            seq = client.post(f"/v1/memories/{memory_id}/messages", json={"text": "kept across the shutdown"}).json()
        assert seq == {"seq": 1}
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(60) == 0
    with MemoryStore.open(tmp_path / "memories" / memory_id) as store:
        assert [event.text for event in store.events()] == ["kept across the shutdown"]
