"""Stable-Baselines3 networks as Keras 3 models, and back: the core plans SB3 surgery on a mirror.

SB3 policies cannot be traced as a whole (``torch.fx`` stops at preprocessing and distributions), but
the networks inside them are plain chains with known names. A *mirror* is a Keras 3 functional model
with one Dense layer per ``nn.Linear`` of such a chain, named by its place in ``net_arch`` (``pi_0``,
``vf_1``, ``q_0``, …) or by its SB3 name (``action_net``, ``value_net``, ``q``), and the chain's
activation. Its kernel is the Linear's ``weight.T``. The core's surgery (unit IDs, rules, initializers)
runs on the mirror unchanged; :func:`state_dict_of` turns the new mirror back into parameters.

Layouts read here (parameter-name prefixes of the policy's ``state_dict``):

* ``DQNPolicy``: ``q_net.q_net.{0,2,…}`` → ``q_0``, ``q_1``, …, the last one ``q`` (the Q-values);
  the target network ``q_net_target.q_net.*`` is mirrored the same way.
* ``ActorCriticPolicy`` (PPO, A2C): ``mlp_extractor.policy_net.*`` → ``pi_*``, ``action_net`` (the
  logits, or the Gaussian's means), ``mlp_extractor.value_net.*`` → ``vf_*``, ``value_net``.

The mirror needs Keras 3 on any backend (``KERAS_BACKEND=torch`` needs no TensorFlow); nothing here
imports SB3 or torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_surgeon_rl.errors import SurgeryError

#: PyTorch activation modules and the Keras activation of the same function.
ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "Sigmoid": "sigmoid", "ELU": "elu", "SiLU": "silu", "GELU": "gelu",
               "Identity": "linear", "LeakyReLU": None}


@dataclass(frozen=True)
class Chain:
    """One chain of Linear layers in a policy: where its parameters live and what its mirror layers are called.

    Attributes:
        prefix: the ``state_dict`` prefix of its ``nn.Sequential`` (``"mlp_extractor.policy_net"``).
        names: the mirror layer of each Linear, in order.
        head: the prefix of a Linear read after the chain (``"action_net"``), or ``None``.
        head_name: its mirror layer's name.
    """

    prefix: str
    names: tuple[str, ...]
    head: str | None = None
    head_name: str | None = None


def _linear_indices(state: dict, prefix: str) -> list[int]:
    """The module indices of the Linear layers of the ``nn.Sequential`` at ``prefix``, in order."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    return sorted(int(m.group(1)) for k in state if (m := pattern.match(k)))


def chains(policy_kind: str, state: dict) -> dict[str, list[Chain]]:
    """The mirrored networks of a policy: ``{network: [chains read from the observation]}``.

    Args:
        policy_kind: ``"dqn"`` or ``"actor_critic"``.
        state: the policy's ``state_dict`` (names and shapes are read).
    """
    if policy_kind == "dqn":
        out = {}
        for network in ("q_net", "q_net_target"):
            idx = _linear_indices(state, f"{network}.q_net")
            if not idx:
                raise SurgeryError(f"no Linear layers under {network}.q_net: not an MLP DQN policy")
            names = tuple(f"q_{i}" for i in range(len(idx) - 1)) + ("q",)
            out[network] = [Chain(f"{network}.q_net", names)]
        return out
    if policy_kind == "actor_critic":
        pi = _linear_indices(state, "mlp_extractor.policy_net")
        vf = _linear_indices(state, "mlp_extractor.value_net")
        return {"policy": [Chain("mlp_extractor.policy_net", tuple(f"pi_{i}" for i in range(len(pi))),
                                 "action_net", "action_net"),
                           Chain("mlp_extractor.value_net", tuple(f"vf_{i}" for i in range(len(vf))),
                                 "value_net", "value_net")]}
    raise SurgeryError(f"no mirror for SB3 policies of kind {policy_kind!r}")


def _params(chain: Chain, state: dict) -> list[tuple[str, str]]:
    """``(mirror layer, state_dict prefix)`` of every Linear of the chain, head last."""
    idx = _linear_indices(state, chain.prefix)
    pairs = [(name, f"{chain.prefix}.{i}") for name, i in zip(chain.names, idx)]
    if chain.head is not None:
        pairs.append((chain.head_name, chain.head))
    return pairs


def build(chains_: list[Chain], state: dict, n_inputs: int, activation: str, name: str) -> Any:
    """A Keras 3 functional mirror of ``chains_`` (all reading one observation input ``obs``) with the
    parameters of ``state``; one model output per chain.

    Args:
        chains_: the chains of one network (:func:`chains`).
        state: the policy's ``state_dict`` as NumPy arrays.
        n_inputs: the observation's length.
        activation: the Keras activation between Linear layers (:data:`ACTIVATIONS`).
        name: the model's name.
    """
    import keras

    x = keras.Input((n_inputs,), name="obs")
    outputs, weights = [], {}
    for chain in chains_:
        h = x
        pairs = _params(chain, state)
        for k, (layer, prefix) in enumerate(pairs):
            last = k == len(pairs) - 1 and (chain.head is not None or k == len(chain.names) - 1)
            kernel, bias = state[f"{prefix}.weight"], state.get(f"{prefix}.bias")
            h = keras.layers.Dense(kernel.shape[0], activation=None if last else activation, name=layer,
                                   use_bias=bias is not None)(h)
            weights[layer] = [kernel.T] + ([bias] if bias is not None else [])
        outputs.append(h)
    model = keras.Model(x, outputs if len(outputs) > 1 else outputs[0], name=name)
    for layer, arrays in weights.items():
        model.get_layer(layer).set_weights([np.asarray(a, dtype="float32") for a in arrays])
    return model


def state_dict_of(model: Any, chains_: list[Chain], old_state: dict) -> dict[str, np.ndarray]:
    """The parameters of a (new) mirror, under the state_dict names of ``chains_``'s layout.

    Linear ``i`` of a chain keeps its module index (``policy_net.2`` stays ``policy_net.2``): SB3 builds
    its chains as Linear, activation, Linear, … so a resized chain has the same indices.
    """
    out = {}
    for chain in chains_:
        for layer, prefix in _params(chain, old_state):
            arrays = model.get_layer(layer).get_weights()
            out[f"{prefix}.weight"] = np.ascontiguousarray(np.asarray(arrays[0]).T)
            if len(arrays) > 1:
                out[f"{prefix}.bias"] = np.asarray(arrays[1])
    return out


def net_arch(model: Any, chains_: list[Chain]) -> list[list[int]]:
    """Per chain, the widths of its hidden layers in the (new) mirror: the chain's ``net_arch``."""
    out = []
    for chain in chains_:
        names = chain.names if chain.head is not None else chain.names[:-1]
        out.append([int(model.get_layer(n).units) for n in names])
    return out
