"""The admin entry point: functions and ``python -m hsa_memory.service.admin``.

Scenarios:
- create-key prints the token once (stdout) and a note (stderr); the token authenticates;
- list-keys shows ids and tenants, never tokens; revoke-key ends the token; unknown ids exit 1;
- a bad tenant name is a usage error (exit 2); every command has help;
- the module runs as ``python -m`` with the catalog from the environment.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from hsa_memory.service import Settings
from hsa_memory.service.admin import list_keys, main
from hsa_memory.service.catalog import ServiceCatalog


def test_create_list_revoke(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    created = runner.invoke(main, [*args, "create-key", "--tenant", "acme", "--label", "ci"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("hsa_") and "store the token now" in created.stderr
    catalog = ServiceCatalog(Settings(data_dir=tmp_path).service_catalog_url)
    key = catalog.authenticate(token)
    assert key.tenant == "acme" and key.label == "ci"

    listed = runner.invoke(main, [*args, "list-keys"])
    assert listed.exit_code == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["key_id"], r["tenant"], r["revoked"]) for r in rows] == [(key.key_id, "acme", None)]
    assert token.split("_", 2)[2] not in listed.stdout

    revoked = runner.invoke(main, [*args, "revoke-key", key.key_id])
    assert revoked.exit_code == 0 and revoked.stdout == f"revoked key {key.key_id} of tenant acme\n"
    assert catalog.authenticate(token) is None
    assert list_keys("acme", Settings(data_dir=tmp_path))[0].revoked_us is not None

    unknown = runner.invoke(main, [*args, "revoke-key", "ffffffffffff"])
    assert unknown.exit_code == 1
    assert unknown.output == "Error: no API key with id 'ffffffffffff'; list them with list-keys\n"
    catalog.close()


def test_usage_errors_and_help(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["--data-dir", str(tmp_path), "create-key", "--tenant", "a b"])
    assert bad.exit_code == 2 and "must be 1-64 characters" in bad.output
    assert runner.invoke(main, ["create-key"]).exit_code == 2
    for command in main.commands:
        shown = runner.invoke(main, [command, "--help"])
        assert shown.exit_code == 0 and "python -m hsa_memory.service.admin" in shown.output, command


def test_runs_as_a_module(tmp_path):
    env = {**os.environ, "HSA_SERVICE_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "hsa_memory.service.admin", "create-key", "--tenant", "acme", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["tenant"] == "acme" and made["token"].startswith(f"hsa_{made['key_id']}_")
    assert (tmp_path / "service.sqlite").exists()
