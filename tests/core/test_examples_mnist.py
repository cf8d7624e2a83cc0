"""Smoke tests of the experiment runner and the MNIST transfer experiment (a few batches per arm)."""

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import runner  # noqa: E402  (imports neither Keras nor TensorFlow)


def toy_run_one(arm: str, seed: int, steps: int, offset: float = 0.0) -> list:
    """A stand-in experiment: one 'episode' every 10 steps, reward rising with the step."""
    rng = np.random.default_rng(seed)
    bonus = {"old": 0.0, "transplant_preserve": 1.0, "scratch": -1.0}[arm]
    return [{"step": s, "reward": s / 10 + bonus + offset + rng.normal(0, 0.1)} for s in range(10, steps + 1, 10)]


def test_mnist_experiment_writes_every_arm_json_and_png(tmp_path, capsys):
    from examples import mnist_transfer

    paths = mnist_transfer.main(["--runs", "1", "--steps", "4", "--old-steps", "4", "--evals", "2",
                                 "--jobs", "0", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "MNIST source:" in out and "train /" in out
    results = json.loads(Path(paths["json"]).read_text())
    assert set(results["arms"]) == set(mnist_transfer.ARMS)
    for arm, runs in results["arms"].items():
        assert len(runs) == 1 and runs[0]["seed"] == 0, arm
        batches = [r["batch"] for r in runs[0]["records"]]
        assert batches == [0, 2, 4], arm
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in runs[0]["records"]), arm
        assert arm in out
    assert results["config"]["data_source"] and results["config"]["seeds"] == [0]
    assert results["prepared"]["0"]["old_test_accuracy"] >= 0.0
    assert Path(paths["png"]).stat().st_size > 0
    assert Path(paths["png"]) == tmp_path / "mnist_transfer" / "plot.png"
    # the old network is cached under the results folder and reused
    cached = list((tmp_path / "mnist_transfer" / "old_models").glob("old_seed0_*.keras"))
    assert len(cached) == 1


def test_runner_in_parallel_processes_then_plot_and_summary_from_json(tmp_path, capsys):
    path = runner.run("toy", partial(toy_run_one, offset=0.5), ["old", "transplant_preserve"], runs=2, steps=50,
                      seed=3, jobs=2, out=tmp_path, x="step", y="reward", config={"what": "toy"},
                      plot_options={"smooth": 2}, progress=False)
    assert path == tmp_path / "toy" / "results.json"
    res = json.loads(path.read_text())
    assert res["config"]["seeds"] == [3, 4] and res["config"]["what"] == "toy"
    for arm in ("old", "transplant_preserve"):
        assert [r["seed"] for r in res["arms"][arm]] == [3, 4]
        assert len(res["arms"][arm][0]["records"]) == 5
    # same seed, same records: the runs really ran with the recorded seed
    assert res["arms"]["old"][0]["records"] == toy_run_one("old", 3, 50, offset=0.5)

    rows = {r["arm"]: r for r in runner.summary_rows(path, checkpoints=[20])}
    assert rows["transplant_preserve"]["final"][0] == pytest.approx(rows["old"]["final"][0] + 1.0, abs=0.3)
    assert rows["old"]["at"][20][0] == pytest.approx(0.5 + 1.5, abs=0.3)  # mean of steps 10 and 20 (smooth 2)
    table = runner.summary(path, checkpoints=[20])
    assert "transplant_preserve" in table and "step 20" in table
    assert runner.summary(path, markdown=True).startswith("| arm | runs |")
    assert runner.summary(path, [20], digits=1) != table  # 3 decimals by default, 1 asked for
    runner.main(["summary", str(path), "--at", "20", "--digits", "1"])
    assert capsys.readouterr().out.strip() == runner.summary(path, [20], digits=1)

    png = tmp_path / "elsewhere.png"
    runner.main(["plot", str(path), "--out", str(png), "--band", "minmax", "--zoom", "20"])
    assert png.stat().st_size > 0
    assert runner.plot(path) == tmp_path / "toy" / "plot.png"


def test_runner_reports_a_failing_run_and_bad_records(tmp_path):
    with pytest.raises(RuntimeError, match=r"runs: the task \('nope', 0\) failed: KeyError"):
        runner.run("bad", toy_run_one, ["old", "nope"], runs=1, steps=20, jobs=0, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"needs the keys 'batch' and 'accuracy'"):
        runner.run("bad", toy_run_one, ["old"], runs=1, steps=20, jobs=0, out=tmp_path, x="batch", y="accuracy",
                   progress=False)


def logged_run_one(arm: str, seed: int, steps: int, log: list) -> list:
    """``toy_run_one`` that notes every call, to tell runs that ran from runs that were kept."""
    log.append((arm, seed))
    return toy_run_one(arm, seed, steps)


def test_resume_runs_only_the_missing_runs_and_keeps_the_finished_ones(tmp_path):
    log: list = []
    run = partial(logged_run_one, log=log)
    path = runner.run("toy", run, ["old"], runs=2, steps=50, jobs=0, out=tmp_path, config={"what": "toy"},
                      progress=False)
    first = json.loads(path.read_text())["arms"]["old"]
    assert sorted(log) == [("old", 0), ("old", 1)]

    log.clear()
    runner.run("toy", run, ["old", "transplant_preserve"], runs=3, steps=50, jobs=0, out=tmp_path,
               config={"what": "toy", "command": "another command line"}, progress=False, resume=True)
    assert sorted(log) == [("old", 2), ("transplant_preserve", 0), ("transplant_preserve", 1),
                           ("transplant_preserve", 2)]
    res = json.loads(path.read_text())
    assert [r["seed"] for r in res["arms"]["old"]] == [0, 1, 2]
    assert res["arms"]["old"][:2] == first  # kept as saved, timings included
    assert [r["seed"] for r in res["arms"]["transplant_preserve"]] == [0, 1, 2]
    assert res["config"]["seeds"] == [0, 1, 2] and len(res["resumed"]) == 1

    log.clear()  # nothing left to run
    runner.run("toy", run, ["old", "transplant_preserve"], runs=3, steps=50, jobs=0, out=tmp_path,
               config={"what": "toy"}, progress=False, resume=True)
    assert log == []

    # without --resume the experiment starts again
    runner.run("toy", run, ["old"], runs=1, steps=50, jobs=0, out=tmp_path, config={"what": "toy"}, progress=False)
    assert log == [("old", 0)] and list(json.loads(path.read_text())["arms"]) == ["old"]


def test_resume_refuses_other_settings_before_anything_runs(tmp_path):
    log: list = []
    run = partial(logged_run_one, log=log)
    runner.run("toy", run, ["old", "transplant_preserve"], runs=2, steps=50, jobs=0, out=tmp_path,
               config={"lr": 0.01}, progress=False)
    saved = (tmp_path / "toy" / "results.json").read_text()
    log.clear()
    with pytest.raises(ValueError, match=r"settings differ \(lr: saved 0.01, now 0.1; steps: saved 50, now 60\)"):
        runner.run("toy", run, ["old", "transplant_preserve"], runs=2, steps=60, jobs=0, out=tmp_path,
                   config={"lr": 0.1}, progress=False, resume=True)
    assert log == [] and (tmp_path / "toy" / "results.json").read_text() == saved  # refused before anything ran


def test_resume_with_fewer_arms_or_seeds_keeps_the_other_saved_runs(tmp_path):
    log: list = []
    run = partial(logged_run_one, log=log)
    path = runner.run("toy", run, ["old", "transplant_preserve", "scratch"], runs=2, steps=50, jobs=0,
                      out=tmp_path, config={"lr": 0.01}, progress=False)
    first = json.loads(path.read_text())["arms"]
    log.clear()
    # more seeds for two arms only: scratch keeps its two runs and gets no more
    runner.run("toy", run, ["old", "transplant_preserve"], runs=4, steps=50, jobs=0, out=tmp_path,
               config={"lr": 0.01}, progress=False, resume=True)
    assert sorted(log) == [("old", 2), ("old", 3), ("transplant_preserve", 2), ("transplant_preserve", 3)]
    res = json.loads(path.read_text())
    assert list(res["arms"]) == res["config"]["arms"] == ["old", "transplant_preserve", "scratch"]
    assert res["arms"]["scratch"] == first["scratch"] and res["arms"]["old"][:2] == first["old"]
    assert [r["seed"] for r in res["arms"]["old"]] == [0, 1, 2, 3] and res["config"]["seeds"] == [0, 1, 2, 3]
    log.clear()
    # fewer seeds than saved: nothing runs, nothing is dropped
    runner.run("toy", run, ["old"], runs=1, steps=50, jobs=0, out=tmp_path, config={"lr": 0.01}, progress=False,
               resume=True)
    assert log == [] and json.loads(path.read_text())["arms"] == res["arms"]


def test_paired_comparison_finds_a_known_difference_seed_by_seed(tmp_path, capsys):
    path = runner.run("toy", partial(toy_run_one, offset=0.0), ["old", "transplant_preserve"], runs=4, steps=100,
                      jobs=0, out=tmp_path, progress=False)
    d = runner.paired(path, "transplant_preserve", "old")
    assert d["seeds"] == [0, 1, 2, 3]
    # same seed, same noise: the difference is the bonus exactly, at every seed
    assert d["curve"]["diffs"] == pytest.approx([1.0] * 4) and d["final"]["diffs"] == pytest.approx([1.0] * 4)
    assert d["curve"]["ahead"] == 4 and d["curve"]["ci"] == pytest.approx((1.0, 1.0))
    back = runner.paired(path, "old", "transplant_preserve")
    assert back["curve"]["mean"] == pytest.approx(-1.0) and back["final"]["ahead"] == 0

    # other seeds for the other arm: the noise no longer cancels, the interval widens around the bonus
    res = json.loads(path.read_text())
    for r in res["arms"]["old"]:
        r["records"] = toy_run_one("old", r["seed"] + 100, 100)
    d = runner.paired(res, "transplant_preserve", "old")
    lo, hi = d["final"]["ci"]
    assert lo < d["final"]["mean"] < hi and lo != hi and abs(d["final"]["mean"] - 1.0) < 0.3

    runner.main(["compare", str(path), "transplant_preserve", "old"])
    out = capsys.readouterr().out
    assert "transplant_preserve − old, paired over 4 seeds:" in out and "ahead at 4 of 4 seeds" in out
    assert "curve mean +1.000 (95% CI +1.000 … +1.000)" in out
    runner.main(["compare", str(path), "transplant_preserve", "old", "--digits", "1"])
    assert "curve mean +1.0 (95% CI +1.0 … +1.0)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"no runs of arm 'scratch'"):
        runner.paired(path, "scratch", "old")


def test_a_gzipped_copy_of_the_results_reads_like_the_original(tmp_path):
    import gzip

    path = runner.run("toy", toy_run_one, ["old", "transplant_preserve"], runs=2, steps=50, jobs=0, out=tmp_path,
                      progress=False)
    copy = tmp_path / "toy.json.gz"
    copy.write_bytes(gzip.compress(path.read_bytes()))
    assert runner.load(copy) == runner.load(path)
    assert runner.summary(copy, [20]) == runner.summary(path, [20])
    assert runner.plot(copy, out=tmp_path / "toy.png").stat().st_size > 0


def toy_prepare(seed: int, trained: dict, calls: list) -> dict:
    """A stand-in phase 1: what it 'trains' is ``trained[seed]``; where it caches it changes from call to call."""
    calls.append(seed)
    return {"path": f"cache/{len(calls)}", "cached": len(calls) > 1, "phase1": trained.get(seed, [seed])}


def test_resume_prepares_seeds_again_and_refuses_one_whose_preparation_came_out_different(tmp_path):
    log, calls = [], []
    run = partial(logged_run_one, log=log)
    runner.run("toy", run, ["old"], runs=2, steps=50, jobs=0, out=tmp_path, progress=False,
               prepare=partial(toy_prepare, trained={}, calls=calls))
    path = tmp_path / "toy" / "results.json"

    # a new arm: its seeds are prepared again (a cache may be gone); only path/cached differ, so it runs
    calls.clear(), log.clear()
    runner.run("toy", run, ["old", "transplant_preserve"], runs=2, steps=50, jobs=0, out=tmp_path, progress=False,
               prepare=partial(toy_prepare, trained={}, calls=calls), resume=True)
    assert sorted(calls) == [0, 1] and sorted(log) == [("transplant_preserve", 0), ("transplant_preserve", 1)]
    saved = path.read_text()

    # seed 1's old agent now comes out different (another machine kind): refused, nothing runs or is saved
    calls.clear(), log.clear()
    with pytest.raises(RuntimeError, match=r"seed 1 prepared again gives a different phase1"):
        runner.run("toy", run, ["old", "transplant_preserve", "scratch"], runs=2, steps=50, jobs=0, out=tmp_path,
                   progress=False, prepare=partial(toy_prepare, trained={1: ["other"]}, calls=calls), resume=True)
    assert log == [] and json.loads(path.read_text())["prepared"] == json.loads(saved)["prepared"]

    # seeds with nothing left to run are not prepared again
    calls.clear()
    runner.run("toy", run, ["old", "transplant_preserve"], runs=2, steps=50, jobs=0, out=tmp_path, progress=False,
               prepare=partial(toy_prepare, trained={1: ["other"]}, calls=calls), resume=True)
    assert calls == [] and log == []
