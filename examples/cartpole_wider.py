"""CartPole, hidden layers 2×4 → 2×16: both hidden layers of a trained DQN are widened.

The original report: 4 → Dense4 → Dense4 → Dense2 widened to Dense16 → Dense16, 8,000 steps a
phase, 20 runs; "transplant ahead most of the run".

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent (2×4) keeps training
  preserve   ours: resume_dqn, the 12 new units per layer have zero outgoing weights (the function is kept)
  net2net    ours: resume_dqn, Net2WiderNet: new units copy old ones, outgoing weights split unequally
             (the function is kept; copies can diverge)
  original   the original method: the new units start random (spec init "random"; the function changes)
  scratch    4 → Dense16 → Dense16 → Dense2, a fresh agent, trained for phase 1 + phase 2 steps

Ablations, each one change to preserve:

  preserve_carry_optimizer   Adam's moments carried from phase 1 (resume_dqn optimizer_state="carry")
  preserve_lr_low            Adam's learning rate 2.5e-4 instead of 1e-3
  preserve_fresh_memory      phase 2 starts with an empty replay memory (resume_dqn memory="fresh")

Usage:
    python examples/cartpole_wider.py                                    # 16,000 + 8,000 steps, 5 runs
    python examples/cartpole_wider.py --steps 150 --old-steps 150 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import tf_keras  # noqa: F401, I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "cartpole_wider"
OLD_STEPS = 16_000
ARMS = ["old", "preserve", "net2net", "original", "scratch", "preserve_carry_optimizer", "preserve_lr_low",
        "preserve_fresh_memory"]
UNITS = {"h1": 16, "h2": 16}
EXP = {
    "env": "CartPole-v1",
    "old": {"features": None, "actions": None, "hidden": [4, 4]},
    "new": {"features": None, "actions": None, "hidden": [16, 16]},
    "specs": {"preserve": {"units": UNITS},
              "net2net": {"units": UNITS, "init": "net2net"},
              "original": {"units": UNITS, "init": "random"}},
    # ablations of what might cause a dip after the widening
    "options": {"preserve_carry_optimizer": {"like": "preserve", "optimizer_state": "carry"},
                "preserve_lr_low": {"like": "preserve", "lr": 2.5e-4},
                "preserve_fresh_memory": {"like": "preserve", "memory": "fresh"}},
    "competence": 195,
    "threshold": 475,
    "agent": {"policy": "boltzmann", "warmup": 100},
}

# the transfer methods of docs/transfer.md (python examples/cartpole_wider.py --transfer)
EXP, TRANSFER_ARMS = transfer.with_methods(EXP)
#: The copy arms left out, and why.
COPY_LEFT_OUT = "every layer changes width (2×4 → 2×16), so no layer of the old network fits the new one"


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=8000, runs=5, at=[2000, 4000, 6000, 7800],
                    title="CartPole-v1: hidden layers 2×4 → 2×16", old_steps=OLD_STEPS,
                    transfer_arms=TRANSFER_ARMS)


if __name__ == "__main__":
    main()
