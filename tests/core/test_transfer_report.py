"""The transfer comparison's tables (examples/transfer_report.py): paired over the seeds the methods ran.

Results are built by hand in the shape ``examples/experiments/dqn.py`` saves (as in
``test_greedy_stats.py``), so each verdict can be worked out on paper.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import transfer_report  # noqa: E402
from test_greedy_stats import results, run  # noqa: E402  (pytest puts tests/core on the path)


def curves(seeds, offset, noise=0.0):
    rng = np.random.default_rng(0)
    return [run(s, 100, [100 + offset + s, 110 + offset + s + rng.normal(0, noise),
                         120 + offset + s + rng.normal(0, noise), 130 + offset + s]) for s in seeds]


def toy():
    """Yardsticks at seeds 0-5, the methods at 2-5, an ablation at 0-1 (left out of the comparison);
    ``noise`` is 20 above scratch at every seed, ``reset_final`` 20 below, ``distill`` scratch give or
    take 5 in both directions."""
    arms = {"preserve": curves(range(6), 10), "scratch": curves(range(6), 0),
            "preserve_lr_low": curves(range(2), 50),
            "noise": curves(range(2, 6), 20),
            "reset_final": curves(range(2, 6), -20),
            "distill": [run(s, 100, [100 + s, 110 + s + d, 120 + s - d, 130 + s])
                        for s, d in zip(range(2, 6), (5, -5, 5, -5))]}
    return results(arms, threshold=125)


def test_the_comparison_keeps_only_the_seeds_the_methods_ran():
    res = transfer_report.comparison(toy())
    assert res["seeds_compared"] == [2, 3, 4, 5]
    assert {a: [r["seed"] for r in runs] for a, runs in res["arms"].items()} == {
        a: [2, 3, 4, 5] for a in ("preserve", "scratch", "reset_final", "noise", "distill")}
    assert list(res["arms"])[:2] == ["preserve", "scratch"]  # yardsticks first, the ablation left out


def test_verdicts_follow_the_paired_interval_against_scratch():
    rows = {r["arm"]: r for r in transfer_report.rows(transfer_report.comparison(toy()), threshold=125)}
    assert transfer_report.verdict(rows["noise"]["vs_scratch"]) == "better"
    assert rows["noise"]["vs_scratch"]["curve"]["mean"] == 20 and rows["noise"]["vs_scratch"]["curve"]["ahead"] == 4
    assert transfer_report.verdict(rows["reset_final"]["vs_scratch"]) == "worse"
    assert transfer_report.verdict(rows["distill"]["vs_scratch"]) == "same"
    assert transfer_report.verdict(rows["noise"]["vs_preserve"]) == "better"  # +10 over preserve
    assert rows["scratch"]["vs_scratch"] is None


def test_the_table_has_one_row_per_arm_with_its_verdicts(tmp_path):
    res = transfer_report.comparison(toy())
    text = transfer_report.table(res, threshold=125)
    lines = text.splitlines()
    assert len(lines) == 2 + 5 and "steps to ≥ 125" in lines[0]
    better = next(line for line in lines if line.startswith("| noise "))
    assert "+20.0 (+20.0 … +20.0), 4/4 ▲" in better
    assert "▼" in next(line for line in lines if line.startswith("| reset_final "))
    png = transfer_report.forest(res, "toy", tmp_path / "forest.png")
    assert png.stat().st_size > 1000


def test_the_curves_plot_shows_scratch_ours_and_the_best_and_worst_method(tmp_path):
    res = transfer_report.comparison(toy())
    assert transfer_report.highlights(res) == ["scratch", "preserve", "noise", "reset_final"]
    png = transfer_report.curves(res, "toy", tmp_path / "curves.png", transfer_report.highlights(res))
    assert png.stat().st_size > 1000


def test_the_notes_name_the_seeds_compared_however_they_fall():
    assert transfer_report._seeds([4]) == "seed 4"
    assert transfer_report._seeds([0, 1, 2, 3]) == "seeds 0–3"
    assert transfer_report._seeds([0, 2, 3]) == "seeds 0, 2, 3"
    assert transfer_report.notes(transfer_report.comparison(toy())).startswith("seeds 2–5; ")
