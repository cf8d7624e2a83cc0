"""CartPole, observations 2 → 4: a DQN that saw (x_dot, theta) is given all four observations.

The original report: Input(2: x_dot, theta) → Dense16 → Dense2, 8,000 steps, then Input(4);
"~175–180 vs ~130 reward at ~7,800 steps" (transplant vs scratch, 20 runs).

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent keeps training on (x_dot, theta) only
  preserve   ours: resume_dqn, the weights of x and theta_dot start at zero (the function is kept)
  original   the original method: the weights of x and theta_dot start random (spec init "random")
  scratch    Input(4) → Dense16 → Dense2, a fresh agent, trained for phase 1 + phase 2 steps
  preserve_long_warmup   ablation: preserve collecting 1,000 steps before learning instead of 100 (the
             replay memory cannot be carried over: old observations lack x and theta_dot)
  preserve_carry_optimizer   ablation: preserve with Adam's moments and step count carried through the
             surgery (resume_dqn optimizer_state="carry"; new entries start at zero)

Usage:
    python examples/cartpole_observations.py                             # 20,000 + 8,000 steps, 5 runs
    python examples/cartpole_observations.py --steps 150 --old-steps 150 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import CARTPOLE_FEATURES  # noqa: I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "cartpole_observations"
OLD_STEPS = 20_000  # the old agents' greedy return reaches ~200 (competence: 195) by then
ARMS = ["old", "preserve", "original", "scratch", "preserve_long_warmup", "preserve_carry_optimizer"]
KEPT = ["x_dot", "theta"]
INPUTS = {"old": KEPT, "new": CARTPOLE_FEATURES}
EXP = {
    "env": "CartPole-v1",
    "old": {"features": KEPT, "actions": None, "hidden": [16]},
    "new": {"features": None, "actions": None, "hidden": [16]},
    "specs": {"preserve": {"inputs": INPUTS},
              "original": {"inputs": INPUTS, "init": "random"}},
    "options": {"preserve_long_warmup": {"like": "preserve", "settings": {"nb_steps_warmup": 1000}},
                "preserve_carry_optimizer": {"like": "preserve", "optimizer_state": "carry"}},
    "competence": 195,  # the old agents' greedy return should reach it (CartPole-v0's "solved")
    "threshold": 475,   # steps to a greedy return of 475 (CartPole-v1's "solved")
    "agent": {"policy": "boltzmann", "warmup": 100},
}

# the transfer methods of docs/transfer.md (python examples/cartpole_observations.py --transfer)
EXP, TRANSFER_ARMS = transfer.with_methods(EXP, copy_last=1)
#: The copy arms left out, and why.
COPY_LEFT_OUT = "the first layer reads 2 features in the old network and 4 in the new one"


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=8000, runs=5, at=[2000, 4000, 6000, 7800],
                    title="CartPole-v1: observations (x_dot, theta) → all 4", old_steps=OLD_STEPS,
                    transfer_arms=TRANSFER_ARMS)


if __name__ == "__main__":
    main()
