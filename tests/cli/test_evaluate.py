"""Scenarios: eval niah builds one memory per example and reports a row per (length, depth), as a
table or JSON; bad lists are usage errors."""
import json

from .conftest import invoke


def test_niah_reports_a_row_per_cell():
    result = invoke(None, "--json", "eval", "niah", "--lengths", "300", "--depths", "0,1", "--count", 1,
                    "--max-tokens", 2)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(r["length"], r["depth"], r["n"]) for r in report["rows"]] == [(300, 0.0, 1), (300, 1.0, 1)]
    assert all(0.0 <= r["exact"] <= 1.0 and 0.0 <= r["cited"] <= 1.0 for r in report["rows"])


def test_niah_rejects_bad_lists():
    result = invoke(None, "eval", "niah", "--depths", "0,2")
    assert result.exit_code == 2 and "each value must lie in [0.0, 1.0]" in result.stderr
    assert invoke(None, "eval", "niah", "--lengths", "many").exit_code == 2
