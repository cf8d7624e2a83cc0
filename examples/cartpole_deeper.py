"""CartPole, layers 1×8 → 2×8: a Dense 8 is inserted after the hidden layer of a trained DQN.

The original report: 4 → Dense8 → Dense2 becomes 4 → Dense8 → Dense8 → Dense2, 8,000 steps a phase;
"transplant ahead between ~2,000 and ~6,000 steps".

Arms (phase 2, --steps steps each; phase 1 is trained once per seed and cached):

  old                   the old agent (1×8) keeps training
  transplant_preserve   resume_dqn: the inserted layer is an identity (relu after relu; function kept)
  transplant_random     the original: the inserted layer starts random (insert init "random")
  scratch               4 → Dense8 → Dense8 → Dense2, a fresh agent

Usage:
    python examples/cartpole_deeper.py                                   # 8,000 + 8,000 steps, 5 runs
    python examples/cartpole_deeper.py --steps 150 --runs 1              # smoke test
"""

from keras_surgeon_rl.rl import tf_keras  # noqa: F401, I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn  # noqa: E402

EXPERIMENT = "cartpole_deeper"
ARMS = ["old", "transplant_preserve", "transplant_random", "scratch"]
INSERT = {"after": "h1", "layer": "Dense", "units": 8, "activation": "relu", "name": "h2"}
EXP = {
    "env": "CartPole-v1",
    "old": {"features": None, "actions": None, "hidden": [8]},
    "new": {"features": None, "actions": None, "hidden": [8, 8]},
    "specs": {"transplant_preserve": {"insert": [{**INSERT, "init": "identity"}]},
              "transplant_random": {"insert": [{**INSERT, "init": "random"}]}},
    "agent": {"policy": "boltzmann", "warmup": 100},
}


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=8000, runs=5, at=[2000, 4000, 6000, 7800],
                    title="CartPole-v1: hidden layers 1×8 → 2×8 (Dense 8 inserted)")


if __name__ == "__main__":
    main()
