"""The benchmark's arithmetic (bench/surgery.py): the per-layer fit and the end-to-end table.

The benchmark itself is run by hand (``bench/surgery.py --quick`` is its smoke run, a few minutes);
these check the numbers it derives from its measurements."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "surgery.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_surgery", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fit_recovers_the_per_layer_constant(bench):
    rng = np.random.default_rng(0)
    params, layers = rng.uniform(0, 30, 7), rng.integers(3, 250, 7).astype(float)
    ms = 4.0 + 25.0 * params + 0.6 * layers
    coef = bench.fit_cost(np.c_[np.ones(7), params, layers], ms)
    np.testing.assert_allclose(coef, [4.0, 25.0, 0.6], rtol=1e-6)


def _row(model, flavour, params, layers, ours, clone):
    return {"model": model, "flavour": flavour, "new_params": params, "layers": layers, "ours_s": ours,
            "clone_s": clone}


def test_per_layer_lines_name_the_constant(bench):
    rows = [_row("deep_narrow", "keras3", 14_000, 200, 0.5, 0.8),
            _row("cartpole", "keras3", 595, 3, 0.010, 0.012),
            _row("wide_mlp", "keras3", 30e6, 9, 0.50, 0.90),
            _row("resnet50", "keras3", 25e6, 177, 1.00, 1.60)]
    lines = bench.per_layer_fit(rows)
    assert lines[0] == ("keras3: per-layer constant from deep_narrow (200 layers): ours 2.50 ms a layer, "
                        "clone+set 4.00 ms a layer")
    assert any(line.startswith("keras3: ours ms ≈") and "least squares over 4 models" in line for line in lines)
    assert not any(line.startswith("tf_keras") for line in lines)  # no tf_keras rows measured


def test_end_to_end_table_gives_one_ratio_per_baseline(bench):
    results = [{"kind": "resume_dqn", "model": "dqn_atari", "flavour": "tf_keras", "old_params": 1_686_180,
                "medians": {"ours": 0.3, "fresh": 0.6}},
               {"kind": "cli", "model": "nature_dqn", "flavour": "keras3", "old_params": 1_690_000,
                "medians": {"ours": 0.9, "load_save_old": 0.6, "load_save_new": 0.75}}]
    rows = bench.e2e_markdown(results).splitlines()[2:]
    assert [r.rsplit("|", 2)[-2].strip() for r in rows] == ["0.50", "1.50", "1.20"]
    assert "fresh agent: build + compile" in rows[0] and "model written" in rows[2]


def test_fork_server_runs_each_job_in_its_own_child_and_survives_a_failing_one(bench):
    server = bench.ForkServer("keras3")
    try:
        first = server.run(["--worker", "cartpole", "keras3", "ours", "--runs", "1"])
        with pytest.raises(RuntimeError, match=r"worker --worker no_such_model .*failed \(exit 1\)[\s\S]*KeyError"):
            server.run(["--worker", "no_such_model", "keras3", "ours", "--runs", "1"])
        second = server.run(["--worker", "cartpole", "keras3", "ours", "--runs", "1"])
    finally:
        server.close()
    assert server.proc.returncode == 0
    for out in (first, second):
        (row,) = out
        assert (row["model"], row["method"], row["old_params"], row["new_params"]) == ("cartpole", "ours", 386, 595)
        assert row["median"] > 0 and len(row["times"]["ours"]) == 1
    # each job ran in a child of its own, not in the server
    assert len({first[0]["pid"], second[0]["pid"], server.proc.pid}) == 3


def test_interleaved_limits_an_op_to_its_first_rounds_and_skips_the_warm_up_when_asked(bench):
    calls = {"a": 0, "b": 0}

    def op(name):
        def run():
            calls[name] += 1
            return name
        return run

    seen = []
    res = bench._interleaved({"a": op("a"), "b": op("b")}, 5, keep=lambda n, r: seen.append(r), warm_up=False,
                             limits={"b": 2})
    assert calls == {"a": 5, "b": 2} and len(res["times"]["a"]) == 5 and len(res["times"]["b"]) == 2
    assert sorted(seen) == ["a"] * 5 + ["b"] * 2
    bench._interleaved({"a": op("a"), "b": op("b")}, 1)  # one warm-up run of each, then one round
    assert calls == {"a": 7, "b": 4}
