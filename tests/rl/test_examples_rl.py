"""Smoke test of the keras-rl2 experiment scripts: a few hundred steps per arm, every listed arm recorded.

All five run in one subprocess with ``--jobs 0`` (one TensorFlow start-up instead of one per run;
keras-rl2 only, so sharing a process is allowed). Acrobot and LunarLander get 600 steps: an Acrobot
episode lasts up to 500 steps, and only finished episodes are recorded.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import minatar_actions, minatar_cross_game  # noqa: E402  (sets up keras-rl2, as conftest did already)

EVERY = {"acrobot_actions": 1000, "lunarlander_actions": 1000}  # --eval-every defaults; else 500
SCRIPTS = {  # script -> (--steps and --old-steps, arms)
    "cartpole_observations": (150, ["old", "preserve", "original", "scratch", "preserve_long_warmup",
                                    "preserve_carry_optimizer"]),
    "cartpole_wider": (150, ["old", "preserve", "net2net", "original", "scratch", "preserve_carry_optimizer",
                             "preserve_lr_low", "preserve_fresh_memory"]),
    "cartpole_deeper": (150, ["old", "preserve", "original", "random", "scratch", "preserve_carry_optimizer",
                              "preserve_lr_low", "preserve_long_warmup", "preserve_fresh_memory"]),
    "acrobot_actions": (600, ["old", "preserve", "original", "scratch", "preserve_fresh_memory"]),
    # the ablations preserve_double and preserve_lr_low only pass options (tested in test_evaluate.py)
    "lunarlander_actions": (600, ["old", "preserve", "original", "scratch", "preserve_fresh_memory",
                                  "preserve_margin"]),
}

DRIVER = """
import sys
sys.path.insert(0, {root!r})
from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2
import importlib
for name, (steps, arms) in {scripts!r}.items():
    module = importlib.import_module("examples." + name)
    module.main(["--steps", str(steps), "--old-steps", str(steps), "--runs", "1", "--jobs", "0", "--out", {out!r},
                 "--arms", *arms])
"""


def test_rl_experiment_scripts_write_every_arm_json_and_png(tmp_path):
    code = DRIVER.format(root=str(ROOT), scripts=SCRIPTS, out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name, (steps, arms) in SCRIPTS.items():
        folder = tmp_path / name
        results = json.loads((folder / "results.json").read_text())
        assert list(results["arms"]) == arms, name
        for arm in arms:
            runs = results["arms"][arm]
            assert len(runs) == 1 and runs[0]["seed"] == 0, (name, arm)
            records = runs[0]["records"]
            assert records and all(0 < r["step"] <= steps for r in records), (name, arm)
            assert all(isinstance(r["reward"], float) for r in records), (name, arm)
            greedy = runs[0]["greedy"]  # before, after and every --eval-every steps
            trained = 2 * steps if arm == "scratch" else steps  # scratch: phase 1 + phase 2 steps
            every = EVERY.get(name, 500)
            assert [c["step"] for c in greedy["curve"]] == list(range(0, trained + 1, every)), (name, arm)
            assert len(greedy["before"]["returns"]) == len(greedy["after"]["returns"]) == 10, (name, arm)
        phase1 = results["prepared"]["0"]["phase1"]
        assert phase1 and results["config"]["old_steps"] == steps, name
        assert (folder / "plot.png").stat().st_size > 0, name
        assert list((folder / "old_agents").glob("old_seed0_*/agent.json")), name
        assert f"results: {folder / 'results.json'}" in proc.stdout


MINATAR_DRIVER = """
import sys
sys.path.insert(0, {root!r})
from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2
from examples import minatar_actions, minatar_cross_game
common = ["--steps", "300", "--old-steps", "300", "--runs", "1", "--jobs", "0", "--out", {out!r},
          "--eval-every", "300", "--eval-episodes", "2"]
minatar_actions.main(common + ["--arms", "old", "preserve", "scratch", "copy_first_2_freeze", "distill"])
minatar_cross_game.main(common + ["--transfer"])
"""


def test_minatar_scripts_run_the_transfer_arms_across_games_from_the_same_old_agents(tmp_path):
    code = MINATAR_DRIVER.format(root=str(ROOT), out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    inside = json.loads((tmp_path / "minatar_breakout_actions" / "results.json").read_text())
    across = json.loads((tmp_path / "minatar_breakout_to_space_invaders" / "results.json").read_text())
    assert list(inside["arms"]) == ["old", "preserve", "scratch", "copy_first_2_freeze", "distill"]
    # MinAtar has no time limit: greedy evaluation episodes are capped, and the cap is saved
    assert inside["config"]["greedy_eval"]["max_steps"] == minatar_actions.EVAL_MAX_STEPS
    assert across["config"]["greedy_eval"]["max_steps"] == minatar_actions.EVAL_MAX_STEPS
    assert list(across["arms"]) == ["preserve", "scratch"] + minatar_cross_game.TRANSFER_ARMS
    assert all(len(runs) == 1 and runs[0]["records"] for runs in across["arms"].values())
    # across games the arms start from the Breakout agents trained for the in-game experiment
    assert across["prepared"]["0"]["phase1"] == inside["prepared"]["0"]["phase1"]
    assert not (tmp_path / "minatar_breakout_to_space_invaders" / "old_agents").exists()
    # the old agent is evaluated in Breakout, every arm after the change in Space Invaders
    before, after = (across["arms"]["preserve"][0]["greedy"][k] for k in ("before", "after"))
    assert before["seeds"] == after["seeds"] and len(before["returns"]) == 2
    assert inside["arms"]["preserve"][0]["greedy"]["after"] == inside["arms"]["preserve"][0]["greedy"]["before"]
