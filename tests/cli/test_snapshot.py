"""Scenarios: export writes a snapshot and refuses to overwrite one without --force; import creates
a memory with the same events, refuses a non-empty target and a damaged file, writing nothing."""
import json

from .conftest import CHAT, invoke, write_jsonl


def test_export_then_import(cli, tmp_path):
    assert cli("ingest", write_jsonl(tmp_path / "chat.jsonl", CHAT * 2)).exit_code == 0
    snapshot = tmp_path / "backup.hsamem"
    result = cli("export", snapshot, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"snapshot": str(snapshot), "bytes": snapshot.stat().st_size}
    again = cli("export", snapshot)
    assert again.exit_code == 1 and again.stderr == f"Error: {snapshot} exists; pass --force to replace it\n"
    assert cli("export", snapshot, "--force").exit_code == 0

    restored = tmp_path / "restored"
    result = invoke(restored, "--json", "import", snapshot)
    assert result.exit_code == 0, result.output
    source = json.loads(cli("stats", "--json").stdout)
    assert json.loads(result.stdout) == {"memory": str(restored), "snapshot": str(snapshot),
                                         "events": source["last_seq"], "chunks": source["chunks"]}
    busy = invoke(restored, "import", snapshot)
    assert busy.exit_code == 1 and busy.stderr.startswith("Error: ")


def test_import_of_a_damaged_file_writes_nothing(tmp_path):
    bad = tmp_path / "bad.hsamem"
    bad.write_bytes(b"\x28\xb5\x2f\xfd" + b"not really zstd" * 10)
    result = invoke(tmp_path / "restored", "import", bad)
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())
