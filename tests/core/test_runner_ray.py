"""The experiment runner on Ray: a tiny MNIST transfer experiment (Keras 3, deterministic per seed) through a
local Ray instance and through the process pool gives complete results files with the same runs and the
same numbers."""

import json
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import mnist_transfer  # noqa: E402

ARGS = ["--runs", "2", "--steps", "4", "--old-steps", "4", "--evals", "2", "--arms", "original", "scratch"]


def test_ray_and_the_process_pool_give_the_same_results(tmp_path):
    pool = Path(mnist_transfer.main(ARGS + ["--jobs", "2", "--out", str(tmp_path / "pool")])["json"])
    on_ray = Path(mnist_transfer.main(ARGS + ["--ray", "--out", str(tmp_path / "ray")])["json"])
    a, b = json.loads(pool.read_text()), json.loads(on_ray.read_text())
    assert b["config"]["ray"] == "local" and "ray" not in a["config"]
    assert set(a["arms"]) == set(b["arms"]) == {"original", "scratch"}
    for arm in a["arms"]:
        assert [r["seed"] for r in a["arms"][arm]] == [r["seed"] for r in b["arms"][arm]] == [0, 1]
        assert [r["records"] for r in a["arms"][arm]] == [r["records"] for r in b["arms"][arm]], arm
    assert {k: v["old_test_accuracy"] for k, v in a["prepared"].items()} == \
        {k: v["old_test_accuracy"] for k, v in b["prepared"].items()}
    assert (pool.parent / "workers.log").exists()  # the pool's workers wrote there, not to the console
