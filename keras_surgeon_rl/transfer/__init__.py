"""Transfer strategies from the literature, for Keras 3 and tf_keras (keras-rl2) Q-networks.

* Freezing: :func:`freeze`, :func:`thaw`, :func:`freeze_all_but_final`, and :func:`recompile` to
  make the change count in a compiled model.
* Freeze-then-thaw (walker transfer study): :func:`thaw_schedule`, as a Keras 3 callback
  :class:`FreezeThawCallback` and as a keras-rl2 callback
  :class:`~keras_surgeon_rl.transfer.rl_callbacks.AgentFreezeThawCallback`; for keras-rl2 also
  :class:`~keras_surgeon_rl.transfer.rl_callbacks.ThawAfter` (thaw chosen layers after N steps).
* Forgetting: :func:`reset_layer` (re-draw from the layer's initializers), :func:`add_noise`.
* Layer copying (DQN layer-copying study): :func:`copy_layers`.
* Policy distillation: :func:`distill`, with states from :func:`states_from_memory`,
  :func:`rollout_states` or an array.

Importing this package imports neither Keras nor keras-rl2. ``FreezeThawCallback`` imports Keras 3
on first use; ``AgentFreezeThawCallback`` and ``recompile_agent`` import keras-rl2 on first use
(which disables eager execution for the process), so import them only in a keras-rl2 process::

    import keras_surgeon_rl.rl  # first
    from keras_surgeon_rl.transfer.rl_callbacks import AgentFreezeThawCallback, recompile_agent

Example:
    >>> from keras_surgeon_rl.transfer import copy_layers, freeze_all_but_final
    >>> copy_layers(trained, fresh, first=2)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from keras_surgeon_rl.transfer.copying import copy_layers
from keras_surgeon_rl.transfer.distill import (
    DistillHistory,
    distill,
    greedy_agreement,
    rollout_states,
    states_from_memory,
    temperature_schedule,
)
from keras_surgeon_rl.transfer.layers import (
    freeze,
    freeze_all_but_final,
    get_layer,
    recompile,
    thaw,
    weighted_layers,
)
from keras_surgeon_rl.transfer.perturb import add_noise, reset_layer
from keras_surgeon_rl.transfer.schedule import ThawPlan, thaw_schedule

_LAZY = {
    "FreezeThawCallback": "keras_surgeon_rl.transfer.keras_callbacks",
    "AgentFreezeThawCallback": "keras_surgeon_rl.transfer.rl_callbacks",
    "recompile_agent": "keras_surgeon_rl.transfer.rl_callbacks",
    "ThawAfter": "keras_surgeon_rl.transfer.rl_callbacks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DistillHistory",
    "FreezeThawCallback",
    "ThawPlan",
    "add_noise",
    "copy_layers",
    "distill",
    "freeze",
    "freeze_all_but_final",
    "get_layer",
    "greedy_agreement",
    "recompile",
    "reset_layer",
    "rollout_states",
    "states_from_memory",
    "temperature_schedule",
    "thaw",
    "thaw_schedule",
    "weighted_layers",
]
