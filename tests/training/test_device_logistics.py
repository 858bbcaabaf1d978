"""The GGUF reaches the GPU machine in parts: split (plain or zstd) then join must give the same bytes."""
import json
import os

import pytest

from hsa_memory.training import device


@pytest.mark.parametrize("compress", [False, True])
def test_split_join_round_trip(tmp_path, compress):
    source = tmp_path / "model.gguf"
    data = os.urandom(50_000) + b"\0" * 150_000  # half noise, half compressible
    source.write_bytes(data)
    manifest = device.split(source, tmp_path / "parts", part_bytes=40_000, compress=compress)
    assert len(manifest["parts"]) >= 2
    assert not list((tmp_path / "parts").glob("*.zst")), "the compressed whole is removed after splitting"
    if compress:
        assert sum(p["bytes"] for p in manifest["parts"]) < len(data)
    joined = device.join(tmp_path / "parts", tmp_path / "site")
    assert joined.read_bytes() == data


def test_join_refuses_a_damaged_part(tmp_path):
    source = tmp_path / "model.gguf"
    source.write_bytes(os.urandom(90_000))
    device.split(source, tmp_path / "parts", part_bytes=40_000, compress=True)
    part = tmp_path / "parts" / "gguf.1"
    part.write_bytes(part.read_bytes()[:-1] + b"x")
    with pytest.raises(SystemExit, match="gguf.1"):
        device.join(tmp_path / "parts", tmp_path / "site")
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    assert manifest["compression"] == "zstd"
