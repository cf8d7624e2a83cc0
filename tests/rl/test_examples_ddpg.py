"""Smoke test of examples/pendulum_ddpg.py: tiny phases, every arm recorded, the deterministic actor's
greedy return unchanged by the ``preserve`` surgery at every seed, and the plots written."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY, EPISODES, RUNS = 200, 100, 2, 2
ARMS = ["old", "preserve", "scratch"]

DRIVER = """
import sys
sys.path.insert(0, {root!r})
from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2
from examples import pendulum_ddpg
pendulum_ddpg.main(["--old-steps", "{steps}", "--steps", "{steps}", "--runs", "{runs}", "--eval-every", "{every}",
                    "--eval-episodes", "{episodes}", "--jobs", "0", "--out", {out!r}])
"""


def test_pendulum_ddpg_script_writes_arms_exact_preserve_and_plots(tmp_path):
    code = DRIVER.format(root=str(ROOT), steps=STEPS, runs=RUNS, every=EVERY, episodes=EPISODES, out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = tmp_path / "pendulum_ddpg"
    results = json.loads((folder / "results.json").read_text())
    assert list(results["arms"]) == ARMS
    assert results["config"]["old"]["features"] == ["cos_theta", "sin_theta"]
    assert results["config"]["greedy_eval"]["random"]["mean"] < -300  # random torques: a poor swing-up
    befores = {}
    for arm in ARMS:
        runs = results["arms"][arm]
        assert [r["seed"] for r in runs] == list(range(RUNS)), arm
        for run in runs:
            # Pendulum episodes last 200 steps: one finished episode per 200 phase-2 steps
            assert [r["step"] for r in run["records"]] == [200], arm
            assert all(isinstance(r["reward"], float) and r["reward"] < 0 for r in run["records"]), arm
            greedy = run["greedy"]
            trained = 2 * STEPS if arm == "scratch" else STEPS  # scratch: phase 1 + phase 2 steps
            assert [c["step"] for c in greedy["curve"]] == list(range(0, trained + 1, EVERY)), arm
            assert greedy["before"]["lengths"] == greedy["after"]["lengths"] == [200] * EPISODES, arm
            befores.setdefault(run["seed"], greedy["before"]["returns"])
            assert greedy["before"]["returns"] == befores[run["seed"]], arm  # the same old agent for every arm
    for run in results["arms"]["preserve"]:  # theta_dot starts with zero weights: the very same actions
        assert run["greedy"]["after"]["returns"] == run["greedy"]["before"]["returns"], run["seed"]
    for run in results["arms"]["scratch"]:  # a fresh agent acts otherwise
        assert run["greedy"]["after"]["returns"] != run["greedy"]["before"]["returns"], run["seed"]
        assert run["equal_samples"]["steps"] == 2 * STEPS
    assert befores[0] != befores[1]  # two seeds, two old agents
    assert len(results["prepared"]) == RUNS
    for name in ("plot.png", "greedy.png"):
        assert (folder / name).stat().st_size > 0, name
    assert len(list((folder / "old_agents").glob("old_seed*_*/agent.json"))) == RUNS
    assert f"results: {folder / 'results.json'}" in proc.stdout and "retention" in proc.stdout
