"""CartPole, layers 1×8 → 2×8: a Dense 8 is inserted after the hidden layer of a trained DQN.

The original report: 4 → Dense8 → Dense2 becomes 4 → Dense8 → Dense8 → Dense2, 8,000 steps a phase;
"transplant ahead between ~2,000 and ~6,000 steps".

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent (1×8) keeps training
  preserve   ours: resume_dqn, the inserted layer is an exact identity (relu after relu; the function is kept)
  original   the original method, "near identity": the identity plus Gaussian noise (std 0.01) on its kernel
  random     the inserted layer starts from its own random initializers (insert init "random")
  scratch    4 → Dense8 → Dense8 → Dense2, a fresh agent, trained for phase 1 + phase 2 steps

Ablations, each one change to preserve:

  preserve_carry_optimizer   Adam's moments carried from phase 1 (resume_dqn optimizer_state="carry")
  preserve_lr_low            Adam's learning rate 2.5e-4 instead of 1e-3
  preserve_long_warmup       1,000 warm-up steps instead of 100
  preserve_fresh_memory      phase 2 starts with an empty replay memory (resume_dqn memory="fresh")
  preserve_freeze_inserted   the inserted layer is frozen for the first 4,000 phase-2 steps, then thawed
                             (each a re-compile with a fresh Adam): is training the inserted layer the dip?

Usage:
    python examples/cartpole_deeper.py                                   # 16,000 + 8,000 steps, 5 runs
    python examples/cartpole_deeper.py --steps 150 --old-steps 150 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import tf_keras  # noqa: F401, I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "cartpole_deeper"
OLD_STEPS = 16_000
ARMS = ["old", "preserve", "original", "random", "scratch", "preserve_carry_optimizer", "preserve_lr_low",
        "preserve_long_warmup", "preserve_fresh_memory", "preserve_freeze_inserted"]
INSERT = {"after": "h1", "layer": "Dense", "units": 8, "activation": "relu", "name": "h2"}
EXP = {
    "env": "CartPole-v1",
    "old": {"features": None, "actions": None, "hidden": [8]},
    "new": {"features": None, "actions": None, "hidden": [8, 8]},
    "specs": {"preserve": {"insert": [{**INSERT, "init": "identity"}]},
              "random": {"insert": [{**INSERT, "init": "random"}]}},
    "options": {"original": {"like": "preserve", "noise": {"h2": 0.01}},
                # ablations of what might cause the dip after the insertion
                "preserve_carry_optimizer": {"like": "preserve", "optimizer_state": "carry"},
                "preserve_lr_low": {"like": "preserve", "lr": 2.5e-4},
                "preserve_fresh_memory": {"like": "preserve", "memory": "fresh"},
                "preserve_long_warmup": {"like": "preserve", "settings": {"nb_steps_warmup": 1000}},
                "preserve_freeze_inserted": {"like": "preserve", "freeze": {"layers": ["h2"], "steps": 4000}}},
    "competence": 195,
    "threshold": 475,
    "agent": {"policy": "boltzmann", "warmup": 100},
}

# the transfer methods of docs/transfer.md (python examples/cartpole_deeper.py --transfer)
EXP, TRANSFER_ARMS = transfer.with_methods(EXP, copy_first=1, copy_last=1)
COPY_LEFT_OUT = None


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=8000, runs=5, at=[2000, 4000, 6000, 7800],
                    title="CartPole-v1: hidden layers 1×8 → 2×8 (Dense 8 inserted)", old_steps=OLD_STEPS,
                    transfer_arms=TRANSFER_ARMS)


if __name__ == "__main__":
    main()
