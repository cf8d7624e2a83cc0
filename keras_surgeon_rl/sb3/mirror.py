"""Stable-Baselines3 networks as Keras 3 models, and back: the core plans SB3 surgery on a mirror.

SB3 policies cannot be traced as a whole (``torch.fx`` stops at preprocessing and distributions), but
the networks inside them are plain chains with known names. A *mirror* is a Keras 3 functional model
with one Dense layer per ``nn.Linear`` of such a chain, named by its place in ``net_arch`` (``pi_0``,
``vf_1``, ``q_0``, …) or by its SB3 name (``action_net``, ``q``, ``mu``), and the chain's activation.
Its kernel is the Linear's ``weight.T``; a critic that reads ``cat([observation, action])`` gets two
inputs, ``obs`` and ``action``, and a Concatenate. The core's surgery (unit IDs, rules,
initializers) runs on the mirror unchanged; :func:`state_dict_of` turns the new mirror back into
parameters.

Layouts (``state_dict`` prefixes → mirror layers), by :func:`networks`:

* DQN: ``q_net.q_net.*`` → ``q_0, q_1, …, q``; the target ``q_net_target.q_net.*`` the same way.
* PPO, A2C: ``mlp_extractor.policy_net.*`` → ``pi_*`` then ``action_net``; ``mlp_extractor.value_net.*``
  → ``vf_*`` then ``value_net``.
* SAC: ``actor.latent_pi.*`` → ``pi_*`` then the heads ``mu`` and ``log_std``; ``critic.qf0.*`` →
  ``qf0_*, qf0`` (and ``qf1``), reading observation and action; ``critic_target`` the same way.
* TD3: ``actor.mu.*`` → ``pi_*, mu`` (tanh after ``mu``), ``actor_target`` alike; critics as SAC's.

The mirror needs Keras 3 on any backend (``KERAS_BACKEND=torch`` needs no TensorFlow); nothing here
imports SB3 or torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from keras_surgeon_rl.errors import SurgeryError

#: PyTorch activation modules and the Keras activation of the same function.
ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "Sigmoid": "sigmoid", "ELU": "elu", "SiLU": "silu", "GELU": "gelu",
               "Identity": "linear"}


@dataclass(frozen=True)
class Chain:
    """One chain of Linear layers in a policy.

    Attributes:
        prefix: the ``state_dict`` prefix of its ``nn.Sequential`` (``"mlp_extractor.policy_net"``).
        names: the mirror layer of each of its Linears, in order.
        heads: ``(state_dict prefix, mirror name)`` of Linears that read the chain's last output
            (``action_net``; SAC's ``mu`` and ``log_std``).
        reads_action: the chain reads ``cat([observation, action])`` (a critic).
        final: activation after the chain's last Linear when it is an output (TD3's tanh).
    """

    prefix: str
    names: tuple[str, ...]
    heads: tuple[tuple[str, str], ...] = ()
    reads_action: bool = False
    final: Optional[str] = None


@dataclass(frozen=True)
class Extractor:
    """A CNN features extractor (SB3's ``NatureCNN`` layout): convolutions, a flatten, one Linear + ReLU.

    Attributes:
        prefixes: the ``state_dict`` prefixes that hold it (a PPO's shared extractor appears as
            ``features_extractor``, ``pi_features_extractor`` and ``vf_features_extractor``: one layer).
        convs: ``(module index, stride)`` of each ``Conv2d`` in ``<prefix>.cnn``, in order (kernel
            sizes come from the weights; padding is 0).
    """

    prefixes: tuple[str, ...]
    convs: tuple[tuple[int, tuple[int, int]], ...]


@dataclass(frozen=True)
class Network:
    """A network of the policy: its chains, and the optimizer that trains it (``None`` for targets).

    Attributes:
        name: ``q_net``, ``policy``, ``actor``, ``critic``, ``critic_target``, …
        chains: its chains, each reading the observation (and the action, for critics).
        module: attribute of the policy whose parameters the optimizer covers (``""``: the policy).
        optimizer: the key of that optimizer's state in SB3's saved parameters.
    """

    name: str
    chains: tuple[Chain, ...]
    module: str = ""
    optimizer: Optional[str] = None
    extractor: Optional[Extractor] = None


def _linear_indices(state: dict, prefix: str) -> list[int]:
    """The module indices of the Linear layers of the ``nn.Sequential`` at ``prefix``, in order."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    return sorted(int(m.group(1)) for k in state if (m := pattern.match(k)))


def _chain(state: dict, prefix: str, stem: str, last: Optional[str], **kw) -> Chain:
    """A chain whose Linears are ``stem_0, stem_1, …`` and, if ``last``, the last one ``last``."""
    n = len(_linear_indices(state, prefix))
    if n == 0 and not kw.get("heads"):
        raise SurgeryError(f"no Linear layers under {prefix}: not an MLP policy")
    names = tuple(f"{stem}_{i}" for i in range(n - (last is not None))) + ((last,) if last is not None else ())
    return Chain(prefix, names, **kw)


def networks(kind: str, state: dict, convs: Optional[tuple] = None) -> list[Network]:
    """The mirrored networks of a policy of ``kind`` (``"dqn"``, ``"actor_critic"``, ``"sac"``, ``"td3"``).

    ``convs``: the ``(module index, stride)`` of a CNN extractor's convolutions (:class:`Extractor`),
    for a policy that reads images; ``None`` for a flat observation.
    """
    def extractor(*prefixes: str) -> Optional[Extractor]:
        if convs is None:
            return None
        return Extractor(tuple(p for p in prefixes if f"{p}.linear.0.weight" in state), tuple(convs))

    if kind == "dqn":
        return [Network("q_net", (_chain(state, "q_net.q_net", "q", "q"),), "q_net", "policy.optimizer",
                        extractor("q_net.features_extractor")),
                Network("q_net_target", (_chain(state, "q_net_target.q_net", "q", "q"),), extractor=extractor(
                    "q_net_target.features_extractor"))]
    if kind == "actor_critic":
        return [Network("policy", (
            _chain(state, "mlp_extractor.policy_net", "pi", None, heads=(("action_net", "action_net"),)),
            _chain(state, "mlp_extractor.value_net", "vf", None, heads=(("value_net", "value_net"),))),
            "", "policy.optimizer",
            extractor("features_extractor", "pi_features_extractor", "vf_features_extractor"))]
    if convs is not None:
        raise SurgeryError(f"CNN policies of kind {kind!r} are not mirrored yet (DQN, PPO and A2C are)")
    if kind in ("sac", "td3"):
        n_critics = len({m.group(1) for k in state if (m := re.match(r"critic\.qf(\d+)\.", k))})

        def critic(name: str, optimizer: Optional[str]) -> Network:
            return Network(name, tuple(_chain(state, f"{name}.qf{i}", f"qf{i}", f"qf{i}", reads_action=True)
                                       for i in range(n_critics)), "critic", optimizer)

        if kind == "sac":
            actor = [Network("actor", (_chain(state, "actor.latent_pi", "pi", None,
                                              heads=(("actor.mu", "mu"), ("actor.log_std", "log_std"))),),
                             "actor", "actor.optimizer")]
        else:
            actor = [Network("actor", (_chain(state, "actor.mu", "pi", "mu", final="tanh"),), "actor",
                             "actor.optimizer"),
                     Network("actor_target", (_chain(state, "actor_target.mu", "pi", "mu", final="tanh"),))]
        return actor + [critic("critic", "critic.optimizer"), critic("critic_target", None)]
    raise SurgeryError(f"no mirror for SB3 policies of kind {kind!r}")


def params(chain: Chain, state: dict) -> list[tuple[str, str]]:
    """``(mirror layer, state_dict prefix)`` of every Linear of the chain, heads last."""
    idx = _linear_indices(state, chain.prefix)
    return [(name, f"{chain.prefix}.{i}") for name, i in zip(chain.names, idx)] + list(
        (name, prefix) for prefix, name in chain.heads)


def layer_names(network: Network) -> list[str]:
    own = [name for chain in network.chains for name in chain.names + tuple(n for _, n in chain.heads)]
    if network.extractor is None:
        return own
    return [f"cnn_{k}" for k in range(len(network.extractor.convs))] + ["features"] + own


def build(network: Network, state: dict, obs_shape: tuple, n_act: int, activation: str) -> Any:
    """A Keras 3 functional mirror of ``network`` with the parameters of ``state``; one output per
    chain head (or per chain without heads).

    Args:
        network: one of :func:`networks`.
        state: the policy's ``state_dict`` as NumPy arrays.
        obs_shape: the (preprocessed) observation's shape: ``(n,)``, or ``(channels, height, width)``
            for a CNN extractor (SB3's channels-first images).
        n_act: the action's length (critics' second input).
        activation: the Keras activation between Linear layers (:data:`ACTIVATIONS`).
    """
    import keras

    obs = keras.Input(tuple(obs_shape), name="obs")
    inputs = [obs]
    outputs, weights = [], {}
    features = obs if network.extractor is None else _cnn(keras, network.extractor, state, obs, weights)
    if any(c.reads_action for c in network.chains):
        action = keras.Input((n_act,), name="action")
        inputs.append(action)
        joined = keras.layers.Concatenate(name="obs_action")([features, action])
    for chain in network.chains:
        h = joined if chain.reads_action else features
        idx = _linear_indices(state, chain.prefix)
        for k, (name, i) in enumerate(zip(chain.names, idx)):
            last = k == len(idx) - 1 and not chain.heads
            h = _dense(keras, state, f"{chain.prefix}.{i}", name, (chain.final if last else activation), weights)(h)
        if chain.heads:
            outputs += [_dense(keras, state, prefix, name, None, weights)(h) for prefix, name in chain.heads]
        else:
            outputs.append(h)
    model = keras.Model(inputs if len(inputs) > 1 else obs, outputs if len(outputs) > 1 else outputs[0],
                        name=network.name)
    for name, arrays in weights.items():
        model.get_layer(name).set_weights([np.asarray(a, dtype="float32") for a in arrays])
    return model


def _cnn(keras: Any, extractor: Extractor, state: dict, x: Any, weights: dict) -> Any:
    """NatureCNN's layers on the channels-first input ``x``: Conv2D + ReLU each, a row-major flatten (a
    ``Reshape``, as PyTorch's ``Flatten``; Keras's channels-first ``Flatten`` would reorder), Linear + ReLU."""
    prefix = extractor.prefixes[0]
    for k, (index, stride) in enumerate(extractor.convs):
        kernel, bias = state[f"{prefix}.cnn.{index}.weight"], state[f"{prefix}.cnn.{index}.bias"]
        weights[f"cnn_{k}"] = [kernel.transpose(2, 3, 1, 0), bias]  # (out, in, kh, kw) -> (kh, kw, in, out)
        x = keras.layers.Conv2D(kernel.shape[0], kernel.shape[2:], strides=stride, padding="valid",
                                data_format="channels_first", activation="relu", name=f"cnn_{k}")(x)
    x = keras.layers.Reshape((-1,), name="flatten")(x)
    return _dense(keras, state, f"{prefix}.linear.0", "features", "relu", weights)(x)


def _dense(keras: Any, state: dict, prefix: str, name: str, activation: Optional[str], weights: dict) -> Any:
    kernel, bias = state[f"{prefix}.weight"], state.get(f"{prefix}.bias")
    weights[name] = [kernel.T] + ([bias] if bias is not None else [])
    return keras.layers.Dense(kernel.shape[0], activation=activation, name=name, use_bias=bias is not None)


def state_dict_of(model: Any, network: Network, old_state: dict) -> dict[str, np.ndarray]:
    """The parameters of a (new) mirror under the ``state_dict`` names of ``network``.

    Linear ``i`` of a chain keeps its module index (``policy_net.2`` stays ``policy_net.2``): SB3 builds
    its chains as Linear, activation, Linear, …, so a resized chain has the same indices.
    """
    out = {}
    if network.extractor is not None:
        for prefix in network.extractor.prefixes:  # a shared extractor: the same new arrays under each name
            for k, (index, _stride) in enumerate(network.extractor.convs):
                kernel, bias = model.get_layer(f"cnn_{k}").get_weights()
                out[f"{prefix}.cnn.{index}.weight"] = np.ascontiguousarray(np.asarray(kernel).transpose(3, 2, 0, 1))
                out[f"{prefix}.cnn.{index}.bias"] = np.asarray(bias)
            kernel, bias = model.get_layer("features").get_weights()
            out[f"{prefix}.linear.0.weight"] = np.ascontiguousarray(np.asarray(kernel).T)
            out[f"{prefix}.linear.0.bias"] = np.asarray(bias)
    for chain in network.chains:
        for name, prefix in params(chain, old_state):
            arrays = model.get_layer(name).get_weights()
            out[f"{prefix}.weight"] = np.ascontiguousarray(np.asarray(arrays[0]).T)
            if len(arrays) > 1:
                out[f"{prefix}.bias"] = np.asarray(arrays[1])
    return out


def hidden_widths(model: Any, chain: Chain) -> list[int]:
    """The widths of a chain's hidden layers in a (new) mirror: its part of ``net_arch``."""
    names = chain.names if chain.heads else chain.names[:-1]
    return [int(model.get_layer(n).units) for n in names]
