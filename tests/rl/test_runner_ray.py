"""The experiment runner on Ray: a tiny keras-rl2 experiment (CartPole, every run in a fresh process, a
seeded fit bit-identical) through a local Ray instance and through the process pool gives complete
results files with the same runs and the same numbers."""

from keras_surgeon_rl.rl import tf_keras  # noqa: F401  (first: sets up keras-rl2)

import json
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import cartpole_observations  # noqa: E402

ARGS = ["--steps", "150", "--old-steps", "150", "--runs", "1", "--arms", "old", "preserve", "--eval-every", "100",
        "--eval-episodes", "2"]


def test_ray_and_the_process_pool_give_the_same_results(tmp_path):
    pool = Path(cartpole_observations.main(ARGS + ["--jobs", "2", "--out", str(tmp_path / "pool")])["json"])
    on_ray = Path(cartpole_observations.main(ARGS + ["--ray", "--out", str(tmp_path / "ray")])["json"])
    a, b = json.loads(pool.read_text()), json.loads(on_ray.read_text())
    assert b["config"]["ray"] == "local" and "ray" not in a["config"]
    assert set(a["arms"]) == set(b["arms"]) == {"old", "preserve"}
    for arm in a["arms"]:
        assert [r["seed"] for r in a["arms"][arm]] == [r["seed"] for r in b["arms"][arm]] == [0]
        for x, y in zip(a["arms"][arm], b["arms"][arm]):
            assert x["records"] == y["records"] and x["greedy"] == y["greedy"], (arm, x["seed"])
    assert a["prepared"]["0"]["phase1"] == b["prepared"]["0"]["phase1"]
    log = pool.parent / "workers.log"
    assert log.exists() and log.stat().st_size > 0  # the pool's workers wrote there, not to the console
