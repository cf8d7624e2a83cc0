"""The transfer methods of the literature as experiment arms, the same on every task (``docs/transfer.md``).

Each method is an entry of an experiment's ``options`` (see :mod:`examples.experiments.dqn`), so
it runs through the same phase 2, greedy evaluation and statistics as the surgery arms:

  freeze_all_but_final  preserve, then every layer but the output layer frozen for all of phase 2
  freeze_thaw           preserve, then frozen and thawed from the output backwards over the first 25 %
                        of phase 2 (the freeze-then-thaw study's schedule)
  reset_final           preserve, then the output layer re-drawn from its initializer
  noise                 preserve, then Gaussian noise of 0.1 × each weight array's std on every layer
  copy_first_N          a fresh agent of the new setting (scratch's) with the old agent's first N
                        weighted layers (the layer-copying study); ``_freeze``: those layers frozen
  copy_last_N           the same with the last N layers
  distill               a fresh agent distilled from the old one (temperature 0.1), then DQN
  distill_annealed      the same with the temperature annealed 0.1 → 0.5 (two epochs per step)

Copy arms apply where the old and the new network have layers of the same shapes; a task says
which ``n`` (``copy_first``/``copy_last``) and, for the arms it leaves out, why.
"""

from __future__ import annotations

from typing import Optional

#: Noise of the ``noise`` arm: this fraction of each weight array's standard deviation.
NOISE_ALPHA = 0.1
#: Distillation: states the old agent visits in the new setting (ε-greedy, ε = 0.05) and passes over them.
DISTILL_STATES = 5000
DISTILL = {"states": DISTILL_STATES, "epsilon": 0.05}

#: The arms every task runs: the comparison's yardsticks, then the methods.
BASE_ARMS = ["old", "preserve", "original", "scratch"]
METHOD_ARMS = ["freeze_all_but_final", "freeze_thaw", "reset_final", "noise", "distill", "distill_annealed"]


def methods(copy_first: Optional[int] = None, copy_last: Optional[int] = None,
            output: str = "q") -> tuple[list[str], dict]:
    """The method arms of a task and their ``options`` entries.

    Args:
        copy_first: ``N`` of ``copy_first_N`` (and ``copy_first_N_freeze``); ``None``: no such arms.
        copy_last: the same for ``copy_last_N``.
        output: the output layer's name (``reset_final``).

    Returns:
        ``(arms, options)``, to add to an experiment's arms and ``options``.
    """
    options = {
        "freeze_all_but_final": {"like": "preserve", "freeze": {"layers": "all_but_final", "steps": None}},
        "freeze_thaw": {"like": "preserve", "thaw_schedule": {"tl_end": 0.25}},
        "reset_final": {"like": "preserve", "reset": [output]},
        "noise": {"like": "preserve", "perturb": {"alpha": NOISE_ALPHA}},
        "distill": {"distill": {**DISTILL, "temperature": 0.1, "epochs": 10}},
        "distill_annealed": {"distill": {**DISTILL, "temperature": [0.1, 0.2, 0.3, 0.4, 0.5], "epochs": 2}},
    }
    arms = list(METHOD_ARMS)
    for end, n in (("first", copy_first), ("last", copy_last)):
        if n:
            for frozen in (False, True):
                arm = f"copy_{end}_{n}" + ("_freeze" if frozen else "")
                options[arm] = {"copy": {end: n, "freeze": frozen}}
                arms.append(arm)
    return arms, options


def with_methods(exp: dict, **kwargs) -> tuple[dict, list[str]]:
    """``exp`` with the method arms' options added (see :func:`methods`), and the method arms."""
    arms, options = methods(**kwargs)
    return {**exp, "options": {**exp.get("options", {}), **options}}, arms
