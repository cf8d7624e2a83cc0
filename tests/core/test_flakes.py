"""The flake detector (tests/flakes.py) counts, per test, how often it failed over fresh-process runs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("flakes", ROOT / "tests" / "flakes.py")
flakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(flakes)

TOY = '''
from pathlib import Path

COUNTER = Path({counter!r})


def test_steady():
    assert True


def test_fails_on_odd_runs():
    n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(n))
    assert n % 2 == 0, f"run {{n}}"


def test_skipped():
    import pytest
    pytest.skip("not counted")
'''


def test_counts_failures_per_test_over_runs_in_fresh_processes(tmp_path, monkeypatch, capsys):
    toy = tmp_path / "test_toy.py"
    toy.write_text(TOY.format(counter=str(tmp_path / "counter")))
    monkeypatch.setitem(flakes.SUITES, "toy", ([str(toy)], {}))

    assert flakes.main(["--runs", "3", "--suite", "toy"]) == 1

    out = capsys.readouterr().out
    assert "run 1/3 toy: 1 passed, 1 failed, 1 skipped" in out and "run 2/3 toy: 2 passed, 1 skipped" in out
    assert "2 tests, 3 runs of toy in fresh processes" in out  # the skipped test is not counted
    assert "1 tests failed at least once:" in out
    assert "test_fails_on_odd_runs  failed 2 of 3" in out
    assert "test_steady" not in out.split("failed at least once:")[1]
    assert (tmp_path / "counter").read_text() == "3"  # three separate pytest runs


def test_a_steady_suite_reports_zero_failures(tmp_path, monkeypatch, capsys):
    toy = tmp_path / "test_toy.py"
    toy.write_text("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    monkeypatch.setitem(flakes.SUITES, "toy", ([str(toy)], {}))

    assert flakes.main(["--runs", "2", "--suite", "toy"]) == 0

    out = capsys.readouterr().out
    assert "run 2/2 toy: 2 passed, " in out
    assert "0 failures: every one passed in every run (4 results)" in out


def test_a_suite_that_cannot_be_collected_counts_as_a_failure(tmp_path, monkeypatch, capsys):
    toy = tmp_path / "test_toy.py"
    toy.write_text("import no_such_module_anywhere\n")
    monkeypatch.setitem(flakes.SUITES, "toy", ([str(toy)], {}))

    assert flakes.main(["--runs", "1", "--suite", "toy"]) == 1
    assert "failed 1 of 1" in capsys.readouterr().out
