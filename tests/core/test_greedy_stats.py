"""Retention, dip, steps-to-threshold and confidence intervals, computed from results files.

The results here are built by hand (the shape ``examples/experiments/dqn.py`` saves), so every
expected figure can be worked out on paper.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import greedy, runner  # noqa: E402


def evaluation(mean):
    return {"seeds": [1, 2], "returns": [mean, mean], "lengths": [1, 1], "mean": float(mean)}


def run(seed, before, curve, every=100, equal=None):
    """A run whose greedy curve is ``curve`` (step 0 is the value right after surgery)."""
    out = {"seed": seed, "seconds": 1.0, "records": [{"step": 50, "reward": 1.0}, {"step": 300, "reward": 2.0}],
           "greedy": {"before": evaluation(before), "after": evaluation(curve[0]),
                      "curve": [{"step": every * k, **evaluation(v)} for k, v in enumerate(curve)]}}
    if equal is not None:
        out["equal_samples"] = {"steps": equal, "records": [{"step": equal, "reward": 3.0}]}
    return out


def results(arms, random=0.0, threshold=None, competence=None, steps=300):
    config = {"phase2_steps": steps, "steps": steps, "old_steps": 200,
              "greedy_eval": {"every": 100, "episodes": 2, "seeds": [1, 2], "random": {"mean": random}}}
    if threshold is not None:
        config["threshold"] = threshold
    if competence is not None:
        config["competence"] = competence
    return {"experiment": "toy", "config": config, "arms": arms,
            "plot": {"x": "step", "y": "reward", "smooth": 1, "title": "toy", "band": "ci"}}


def test_exact_surgery_retains_everything_and_the_dip_is_the_lowest_mean_point():
    res = results({"preserve": [run(0, 100, [100, 90, 120, 110]), run(1, 200, [200, 170, 150, 230])]})
    r = greedy.retention(res, "preserve")
    assert r["at_surgery"] == (1.0, 1.0, 1.0)
    # mean curve after step 0: (260, 270, 340) / 300 -> lowest at step 100
    assert r["dip"][0] == pytest.approx(260 / 300) and r["dip_step"] == 100
    assert r["lowest"][0] == pytest.approx(130)  # the dip in return units: (90 + 170) / 2
    assert r["dip"][1] <= r["dip"][0] <= r["dip"][2]
    assert r["seeds_below"] == 2  # seed 0 at 90 %, seed 1 at 75 %
    assert r["final"][0] == pytest.approx(170)
    assert r["curve"][0] == pytest.approx((90 + 120 + 110 + 170 + 150 + 230) / 6)
    assert r["before"][0] == pytest.approx(150) and r["runs"] == 2


def test_retention_is_measured_from_random_play_so_negative_returns_work():
    """Acrobot-like returns: random -500, old agent -100; -120 right after surgery keeps 95 %."""
    res = results({"original": [run(0, -100, [-120, -300, -100]), run(1, -100, [-120, -500, -90])]}, random=-500)
    r = greedy.retention(res, "original")
    assert r["at_surgery"][0] == pytest.approx(380 / 400)
    assert r["dip"][0] == pytest.approx((200 + 0) / 800) and r["dip_step"] == 100
    assert r["final"][0] == pytest.approx(-95)


def test_curve_points_after_the_phase_two_length_are_left_out():
    """Scratch trains phase 1 + phase 2 steps: its later points count only at equal total samples."""
    scratch = [run(s, 100, [10, 20, 30, 40, 500, 600], equal=500) for s in range(3)]
    res = results({"scratch": scratch}, steps=300)
    r = greedy.retention(res, "scratch")
    assert r["final"][0] == pytest.approx(40) and r["dip_step"] == 100
    eq = greedy.equal_samples(res)
    assert eq["steps"] == 500 and eq["final"][0] == pytest.approx(600) and eq["runs"] == 3
    assert greedy.equal_samples(results({"preserve": [run(0, 1, [1, 1])]})) is None


def test_steps_to_threshold_counts_runs_that_never_reach_it_as_later_than_any():
    steps = np.array([0, 100, 200, 300])
    values = np.array([[0, 50, 200, 210], [0, 210, 0, 0], [0, 0, 0, 0]])
    t = greedy.steps_to(steps, values, 200)
    assert t["per_run"] == [200, 100, None] and t["reached"] == 2 and t["median"] == 200
    t = greedy.steps_to(steps, values[[0, 2, 2]], 200)
    assert t["median"] is None  # most runs never got there: no finite median
    res = results({"a": [run(0, 1, [0, 5, 9]), run(1, 1, [9, 9, 9])]}, threshold=9)
    assert greedy.retention(res, "a")["threshold"]["per_run"] == [200, 0]
    assert greedy.retention(res, "a", threshold=5)["threshold"]["per_run"] == [100, 0]
    assert "steps to ≥ 5" in greedy.retention_table(res, threshold=5)


def test_table_names_metric_interval_reference_and_competence(tmp_path):
    res = results({"old": [run(0, 100, [100, 100, 100]), run(1, 50, [50, 60, 40])],
                   "preserve": [run(0, 100, [100, 80, 120]), run(1, 50, [50, 55, 65])],
                   "empty": []}, random=10, threshold=100, competence=60)
    text = greedy.retention_table(res)
    assert "random play 10.0 = 0 %" in text and "95 % bootstrap CI over seeds" in text
    assert "old agents with a greedy return ≥ 60 before surgery: 1 of 2" in text
    assert "preserve" in text and "empty" not in text and "100 % (100 … 100)" in text
    md = greedy.retention_table(res, markdown=True)
    assert md.startswith("| arm | runs | greedy before") and md.count("\n") == 3
    short = results({"a": [run(0, 10, [10])]})  # no evaluation after step 0 yet: dip n/a, no error
    assert "n/a" in greedy.retention_table(short)
    path = tmp_path / "toy.json"
    runner._save(res, path)
    png = greedy.plot(path)
    assert png == tmp_path / "toy_greedy.png" and png.stat().st_size > 0


def test_results_without_a_random_reference_are_refused_with_the_fix():
    res = results({"a": [run(0, 1, [1, 1])]})
    del res["config"]["greedy_eval"]["random"]
    with pytest.raises(ValueError, match="no random-policy reference"):
        greedy.retention(res, "a")


def test_bootstrap_interval_covers_the_mean_and_is_reproducible():
    x = np.random.default_rng(3).normal(10, 2, 40)
    lo, hi = runner.bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo < 2.5  # about 2 * 1.96 * 2 / sqrt(40) = 1.24
    assert runner.bootstrap_ci(x) == (lo, hi)
    assert runner.bootstrap_ci([5.0]) == (5.0, 5.0)
    assert all(np.isnan(runner.bootstrap_ci([])))
    m = runner.bootstrap_ci(np.arange(20.0), statistic=np.median)
    assert m[0] < 9.5 < m[1]


def test_summary_and_plot_bands_give_confidence_intervals(tmp_path):
    arms = {"a": [{"seed": s, "records": [{"step": k, "reward": float(s + k)} for k in (1, 2, 3)]} for s in range(8)]}
    res = {"experiment": "toy", "config": {}, "arms": arms,
           "plot": {"x": "step", "y": "reward", "smooth": 1, "band": "ci"}}
    row = runner.summary_rows(res, [2], interval="ci")[0]
    mean, lo, hi = row["at"][2]
    assert mean == pytest.approx(5.5) and lo < mean < hi
    assert "5.5 (" in runner.summary(res, [2], interval="ci", digits=1)
    assert "mean (95 % bootstrap CI over runs)" in runner.summary(res, [2], interval="ci")
    with pytest.raises(ValueError, match="interval must be"):
        runner.summary_rows(res, [2], interval="sem")
    lo, hi = runner.band_of(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]), "ci")
    assert (lo < [2.0, 3.0]).all() and (hi > [2.0, 3.0]).all()
    path = tmp_path / "results.json"
    runner._save(res, path)
    assert runner.plot(path).stat().st_size > 0
    with pytest.raises(ValueError, match="band must be one of ci, std, minmax"):
        runner.plot(path, band="sem")


def test_a_resumed_experiment_may_add_arms_with_their_specs_but_not_change_saved_ones():
    saved = {"steps": 10, "specs": {"a": {"x": 1}}, "options": {"b": {"lr": 1}}}
    assert runner.resume_mismatch(saved, {"steps": 10, "specs": {"a": {"x": 1}, "c": {"x": 2}},
                                          "options": {"b": {"lr": 1}, "d": {"like": "a"}}}) == []
    differ = runner.resume_mismatch(saved, {"steps": 10, "specs": {"a": {"x": 3}}, "options": {"b": {"lr": 1}}})
    assert differ == ["specs['a']: saved {'x': 1}, now {'x': 3}"]
    assert runner.resume_mismatch(saved, {"steps": 20, **{k: v for k, v in saved.items() if k != "steps"}}) == \
        ["steps: saved 10, now 20"]
    # a saved experiment without any options (none of its arms had any) may gain an arm with options,
    # but a saved arm may not gain options it did not run with
    saved = {"steps": 10, "arms": ["a", "b"], "specs": {"a": {"x": 1}}}
    assert runner.resume_mismatch(saved, {"steps": 10, "arms": ["a", "b", "d"], "specs": {"a": {"x": 1}},
                                          "options": {"d": {"like": "a", "lr": 1}}}) == []
    assert runner.resume_mismatch(saved, {"steps": 10, "specs": {"a": {"x": 1}}, "options": {"b": {"lr": 1}}}) == \
        ["options['b']: saved '(none)', now {'lr': 1}"]
    assert runner.resume_mismatch(saved, {"steps": 10, "specs": {}}) == ["specs['a']: saved {'x': 1}, now '(none)'"]


def test_paired_greedy_differences_seed_by_seed(tmp_path, capsys):
    res = results({"a": [run(0, 100, [100, 50, 120]), run(1, 100, [100, 90, 110]), run(2, 1, [1, 1, 1])],
                   "b": [run(0, 100, [100, 70, 100]), run(1, 100, [100, 80, 100])]})
    d = greedy.paired(res, "a", "b")
    assert d["seeds"] == [0, 1]
    assert d["lowest"]["mean"] == pytest.approx((-20 + 10) / 2) and d["lowest"]["ahead"] == 1
    assert d["final"]["mean"] == pytest.approx(15) and d["final"]["ahead"] == 2
    assert d["curve"]["mean"] == pytest.approx(((85 - 85) + (100 - 90)) / 2)
    with pytest.raises(ValueError, match="share no seed"):
        greedy.paired(results({"a": [run(0, 1, [1, 1])], "b": [run(1, 1, [1, 1])]}), "a", "b")
    path = tmp_path / "results.json"
    runner._save(res, path)
    greedy.main([str(path), "--compare", "a", "b"])
    assert "a − b, greedy return, paired over 2 seeds:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        greedy.main([str(path), "--compare", "a"])
