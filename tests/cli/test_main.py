"""Scenarios: every command has help with a one-line summary and an example; --version; --help and
shell completion run without importing torch; a missing --memory is a usage error (exit 2), a
missing memory a library error (exit 1); library errors print "Error: ..." and exit 1; serve hands
its options to hsa_memory.service.run and says so clearly when the service cannot be imported."""
import os
import subprocess
import sys
import textwrap

import click
import pytest

import hsa_memory
from hsa_memory.cli import main

from .conftest import invoke


def all_commands(group=main, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


COMMANDS = list(all_commands())


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_every_command_has_help_with_an_example(path, command):
    result = invoke(None, *path, "--help")
    assert result.exit_code == 0, result.output
    summary, _, rest = command.help.partition("\n")
    assert summary.endswith(".") and len(summary) <= 72
    assert "\b\n    hsa-memory " in rest
    assert isinstance(command, click.Group) or "--json" in result.output


def test_version():
    result = invoke(None, "--version")
    assert result.exit_code == 0
    assert result.output == f"hsa-memory, version {hsa_memory.__version__}\n"


def script() -> str:
    return os.path.join(os.path.dirname(sys.executable), "hsa-memory")


def test_help_does_not_import_torch():
    code = textwrap.dedent("""
        import sys
        from hsa_memory.cli import main
        for args in [["--help"]] + [[name, "--help"] for name in main.commands]:
            try:
                main(args, prog_name="hsa-memory")
            except SystemExit:
                pass
        assert "torch" not in sys.modules, "torch was imported"
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_shell_completion():
    env = {**os.environ, "_HSA_MEMORY_COMPLETE": "bash_source"}
    source = subprocess.run([script()], env=env, capture_output=True, text=True, timeout=60)
    assert source.returncode == 0 and "_hsa_memory_completion" in source.stdout
    env = {**os.environ, "_HSA_MEMORY_COMPLETE": "bash_complete", "COMP_WORDS": "hsa-memory i", "COMP_CWORD": "1"}
    words = subprocess.run([script()], env=env, capture_output=True, text=True, timeout=60)
    assert words.stdout.split() == ["plain,import", "plain,ingest"]


def test_a_missing_memory_option_is_a_usage_error():
    result = invoke(None, "stats")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: no memory directory: pass --memory DIR or set HSA_MEMORY_DIR\n")


def test_a_missing_memory_is_an_error(tmp_path):
    result = invoke(tmp_path / "nothing", "stats")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no memory at {tmp_path / 'nothing'}: create one with "
                             f"`hsa-memory --memory {tmp_path / 'nothing'} ingest FILE`\n")


def test_unknown_options_and_bad_values_exit_2(cli):
    assert cli("stats", "--nope").exit_code == 2
    assert cli("search", "q", "-k", "0").exit_code == 2
    assert cli("ask").exit_code == 2


def test_library_errors_become_error_lines(cli, tmp_path):
    (tmp_path / "note.txt").write_text("hello there")
    assert cli("ingest", tmp_path / "note.txt").exit_code == 0
    result = cli("search", " ")
    assert result.exit_code == 1
    assert result.stderr == "Error: query: is empty or whitespace only\n"
    # found by an audit: an unknown --model or --device was a ConfigError / RuntimeError traceback
    result = invoke(tmp_path / "memory", "--model", "no-such-preset", "stats")
    assert result.exit_code == 1 and result.stderr.startswith("Error: model: unknown preset 'no-such-preset'")
    result = invoke(tmp_path / "memory", "--device", "quantum", "stats")
    assert result.exit_code == 1 and result.stderr.startswith("Error: device: 'quantum' is not a device")
    result = cli("ask", "hi", "--seed", str(2**70), "--temperature", "0.5")
    assert result.exit_code == 1 and result.stderr.startswith("Error: seed: must be")


def test_serve_passes_its_options_to_the_service(monkeypatch, tmp_path):
    import hsa_memory.service as service

    calls = []
    monkeypatch.setattr(service, "run", lambda **options: calls.append(options))
    assert invoke(None, "serve", "--port", 9000, "--data-dir", tmp_path).exit_code == 0
    assert calls == [{"host": "127.0.0.1", "port": 9000, "catalog_url": None, "data_dir": tmp_path,
                      "log_level": "info", "model": "tiny", "device": "cpu"}]


def test_serve_without_the_service(monkeypatch):
    monkeypatch.setitem(sys.modules, "hsa_memory.service", None)
    result = invoke(None, "serve")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the HTTP service is not available (")
    assert result.stderr.endswith("install it with `pip install 'hsa-memory[service]'`\n")


def test_quiet_silences_library_warnings_for_the_command_only():
    import logging

    from hsa_memory.cli.state import State

    logger = logging.getLogger("hsa_memory")
    before = logger.level
    state = State(None, "tiny", "cpu", json_output=False, quiet=True)
    assert logger.getEffectiveLevel() == logging.ERROR
    state.close()
    assert logger.level == before
