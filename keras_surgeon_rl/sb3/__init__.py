"""Surgery for Stable-Baselines3 agents: the same specs, unit IDs and rules as for Keras models.

``transplant(model, spec, env=None)`` returns a new SB3 model of the same algorithm whose networks
are the old ones changed by ``spec`` (observation features and actions by ID, hidden layers resized
by their place in ``net_arch``), with every parameter both networks have copied and Adam's moments
carried through the same index maps::

    from keras_surgeon_rl import sb3

    spec = {"inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]},
            "outputs": {"old": ["left", "right"], "new": ["left", "right", "wait"]},   # DQN: keep_greedy
            "units": {"q_0": 128}}                                                      # first hidden layer
    new_model = sb3.transplant(model, spec, env=new_env)
    sb3.verify(model, new_model, spec)        # largest difference on the old IDs
    new_model.learn(10_000)

Supported: DQN, PPO, A2C, SAC and TD3 with ``MlpPolicy`` on 1-D ``Box`` observations, and DQN, PPO
and A2C with ``CnnPolicy`` (NatureCNN) on images, whose channels are the IDs; ``Discrete`` actions
(DQN; PPO/A2C with ``new_action_probability`` for new ones) and ``Box`` actions. A new action of a Q-network starts
below the greedy one (``keep_greedy``); a new Box action's mean (PPO, A2C, SAC) or action (TD3)
starts at 0 from zero weights, its log-std at the policy's ``log_std_init`` (PPO, A2C) or 0 (SAC),
and the critics' new action inputs have zero weights: the old actions' log-probabilities, actions
and Q-values are unchanged. Layer names (``units``): ``q_0, …`` (DQN), ``pi_0, …, vf_0, …`` (PPO,
A2C), ``pi_0, …, qf0_0, qf1_0, …`` (SAC, TD3), ``features`` (a CNN's feature layer). Anything else is refused up front with
:class:`~keras_surgeon_rl.errors.SurgeryError`.

The networks are planned on Keras 3 mirrors (:mod:`keras_surgeon_rl.sb3.mirror`); with
``KERAS_BACKEND=torch`` that needs no TensorFlow.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import sys
from typing import Any, Optional



def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # blocked (sys.modules[name] = None) or broken: not usable
        return False


# Installed with the sb3 extra alone (no TensorFlow), Keras runs the mirrors on PyTorch, SB3's own framework.
if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ and not _installed("tensorflow"):
    os.environ["KERAS_BACKEND"] = "torch"

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.sb3 import mirror

logger = logging.getLogger(__name__)

__all__ = ["layers", "load", "transplant", "transplant_vec_normalize", "transplant_zip", "verify"]

#: The algorithms by policy kind, and the zip keys of their optimizers.
KINDS = {"DQN": "dqn", "PPO": "actor_critic", "A2C": "actor_critic", "SAC": "sac", "TD3": "td3"}


def _kind(model: Any) -> str:
    for cls in type(model).__mro__:
        if cls.__name__ in KINDS and cls.__module__.startswith("stable_baselines3"):
            return KINDS[cls.__name__]
    raise SurgeryError(f"{type(model).__name__} with {type(model.policy).__name__}: keras_surgeon_rl.sb3 supports "
                       f"{', '.join(KINDS)}")


def _extractors(model: Any) -> list:
    p = model.policy
    found = [getattr(p, "features_extractor", None)]
    for part in ("q_net", "actor", "critic"):
        found.append(getattr(getattr(p, part, None), "features_extractor", None))
    return [e for e in found if e is not None]


def _check(model: Any, kind: str) -> Optional[tuple]:
    """Refuse what the mirror cannot represent, before anything is built.

    Returns:
        For a CNN policy (image observations), the ``(module index, stride)`` of its convolutions
        (:class:`~keras_surgeon_rl.sb3.mirror.Extractor`); ``None`` for a flat observation.
    """
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import FlattenExtractor

    name = type(model).__name__
    space = model.observation_space
    extractors = _extractors(model)
    convs = None
    if not isinstance(space, spaces.Box) or len(space.shape) not in (1, 3):
        raise SurgeryError(f"{name}'s observation space is {space}; keras_surgeon_rl.sb3 supports 1-D Box and image "
                           "observations so far (dict observations are planned)")
    if len(space.shape) == 3:
        convs = _cnn_layout(name, extractors)
    elif not all(isinstance(e, FlattenExtractor) for e in extractors):
        other = next(e for e in extractors if not isinstance(e, FlattenExtractor))
        raise SurgeryError(f"{name}'s features extractor is a {type(other).__name__}; keras_surgeon_rl.sb3 reads "
                           "FlattenExtractor and NatureCNN-shaped networks: custom extractors are planned")
    activation = _activation(model).__name__
    if activation not in mirror.ACTIVATIONS:
        raise SurgeryError(f"{name}'s activation {activation} has no Keras counterpart here; supported: "
                           f"{sorted(mirror.ACTIVATIONS)}")
    if kind == "actor_critic" and getattr(model.policy, "use_sde", False):
        raise SurgeryError(f"{name} uses gSDE exploration; keras_surgeon_rl.sb3 reads plain Gaussian policies so far")
    return convs


def _cnn_layout(name: str, extractors: list) -> tuple:
    """The convolutions of a NatureCNN-shaped extractor (``cnn``: Conv2d/ReLU pairs then Flatten; ``linear``:
    Linear, ReLU), or a :class:`SurgeryError` naming what differs."""
    import torch.nn as nn

    layouts = set()
    for e in extractors:
        cnn, linear = getattr(e, "cnn", None), getattr(e, "linear", None)
        parts = list(cnn) if isinstance(cnn, nn.Sequential) else []
        ok = (parts and isinstance(linear, nn.Sequential) and [type(m) for m in linear] == [nn.Linear, nn.ReLU]
              and isinstance(parts[-1], nn.Flatten)
              and all(isinstance(m, nn.Conv2d) if i % 2 == 0 else isinstance(m, nn.ReLU)
                      for i, m in enumerate(parts[:-1])))
        convs = [(i, tuple(m.stride)) for i, m in enumerate(parts) if isinstance(m, nn.Conv2d)]
        if not ok or any(tuple(m.padding) != (0, 0) or tuple(m.dilation) != (1, 1) or m.groups != 1
                         for m in parts if isinstance(m, nn.Conv2d)):
            raise SurgeryError(f"{name}'s features extractor {type(e).__name__} is not NatureCNN-shaped (cnn: Conv2d + "
                               "ReLU without padding, then Flatten; linear: Linear + ReLU); custom extractors are "
                               "planned")
        layouts.add(tuple(convs))
    if len(layouts) != 1:
        raise SurgeryError(f"{name}'s features extractors differ in layout; keras_surgeon_rl.sb3 reads one shared "
                           "layout")
    return layouts.pop()


def _activation(model: Any) -> type:
    p = model.policy
    for owner in (p, getattr(p, "actor", None), getattr(p, "q_net", None)):
        fn = getattr(owner, "activation_fn", None)
        if fn is not None:
            return fn
    return type(p.actor.mu[1]) if hasattr(p, "actor") else type(None)


def _change(spec: dict, key: str, name: str) -> Optional[dict]:
    """``spec[key]`` as one change: ``{"old", "new", "init"}``, given so or under its one name."""
    value = spec.get(key)
    if not value:
        return None
    if {"old", "new", "init"} & set(value):
        return value
    if len(value) == 1:
        return next(iter(value.values()))
    raise SurgeryError(f"spec[{key!r}] names {sorted(value)}; an SB3 agent has one {name}: give "
                       "{'old': [...], 'new': [...]} directly")


def _ids(change: Optional[dict], n_old: int) -> tuple[list, list]:
    """Old and new unit IDs of a change (default ``0..n-1`` and unchanged)."""
    if not change:
        return list(range(n_old)), list(range(n_old))
    old = list(change.get("old", range(n_old)))
    return old, list(change.get("new", old))


def _network_spec(spec: dict, kind: str, network: mirror.Network, obs: Optional[dict], act: Optional[dict],
                  discrete: bool, approximate: bool = False) -> dict:
    """The spec of one mirrored network: the observation change on ``obs``, the action change on the action
    heads (new units: ``keep_greedy`` for Q-values, zeros for Gaussian means and log-stds) or, for critics,
    on the ``action`` input; the ``units`` of its layers."""
    out: dict = {k: spec[k] for k in ("init",) if k in spec}
    inputs = {"obs": obs} if obs else {}
    names = mirror.layer_names(network)
    heads = [n for n in ("q", "action_net", "mu", "log_std") if n in names]
    if act:
        if any(c.reads_action for c in network.chains):
            inputs["action"] = act
        elif heads:
            gained = [i for i in act.get("new", []) if i not in act.get("old", act.get("new", []))]
            if kind == "dqn":
                default = "keep_greedy"
            elif discrete and gained and not approximate:
                raise SurgeryError(f"new actions {gained}: a softmax policy cannot gain an action without changing the "
                                   "old actions' probabilities; ask for an approximate start, new_action_probability=p "
                                   "(each new action then starts near probability p), or use DQN (exact)")
            else:
                default = "zeros"
            out["outputs"] = {h: {"init": default, **act} for h in heads}
    if inputs:
        out["inputs"] = inputs
    units = {k: v for k, v in (spec.get("units") or {}).items() if k in names}
    if units:
        out["units"] = units
    return out


def _box(old_space: Any, old_ids: list, new_ids: list, env_space: Any, what: str) -> Any:
    """The new Box: the old bounds by ID (the features' axis: the last, or SB3's channels-first image
    axis 0); new IDs take the bounds of ``env_space`` (required then; an image space is transposed to
    channels first as SB3 does)."""
    from gymnasium import spaces

    image = len(old_space.shape) == 3
    if env_space is not None and image and tuple(env_space.shape[:2]) == tuple(old_space.shape[1:]):
        from stable_baselines3.common.vec_env import VecTransposeImage

        env_space = VecTransposeImage.transpose_space(env_space)
    if old_ids == new_ids:
        return old_space
    shape = (len(new_ids),) + tuple(old_space.shape[1:]) if image else (len(new_ids),)
    if env_space is not None:
        if tuple(env_space.shape) != shape:
            raise SurgeryError(f"the new {what} space has shape {env_space.shape}, the spec's new {what} IDs number "
                               f"{len(new_ids)}: {new_ids}")
        return env_space
    src = index_of(old_ids, new_ids)
    if (src < 0).any():
        new = [i for i, s in zip(new_ids, src) if s < 0]
        raise SurgeryError(f"new {what} IDs {new} need bounds: pass env= (an environment of the new setting) or "
                           f"{what}_space=, whose bounds give them")
    axis = 0 if image else -1
    return spaces.Box(low=np.take(old_space.low, src, axis=axis), high=np.take(old_space.high, src, axis=axis),
                      dtype=old_space.dtype)


def _n(space: Any) -> int:
    return int(space.n) if hasattr(space, "n") else int(np.prod(space.shape))


def _action_space(model: Any, old_ids: list, new_ids: list, given: Any) -> Any:
    from gymnasium import spaces

    space = model.action_space
    if isinstance(space, spaces.Discrete):
        if given is not None and int(given.n) != len(new_ids):
            raise SurgeryError(f"the new action space has {given.n} actions, the spec's new action IDs number "
                               f"{len(new_ids)}")
        return space if len(new_ids) == space.n else spaces.Discrete(len(new_ids))
    return _box(space, old_ids, new_ids, given, "action")


def _state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _optimizer(model: Any, key: str) -> Any:
    owner = model.policy if key == "policy.optimizer" else getattr(model.policy, key.split(".")[0])
    return owner.optimizer


def _parameter_names(model: Any, network: mirror.Network, optimizer: Any) -> list[str]:
    """The ``state_dict`` name of each parameter the optimizer trains, in its order."""
    module = getattr(model.policy, network.module) if network.module else model.policy
    prefix = f"{network.module}." if network.module else ""
    names = {id(p): prefix + n for n, p in module.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _moments(model: Any, network: mirror.Network, old_state: dict, new_state: dict, maps: dict,
             action_src: np.ndarray) -> dict:
    """The network's optimizer ``state_dict`` with Adam's moments carried by ID (new entries zero)."""
    import torch

    from keras_surgeon_rl.slots import map_slot

    optimizer = _optimizer(model, network.optimizer)
    state = optimizer.state_dict()
    out = {"state": {}, "param_groups": state["param_groups"]}
    for index, name in enumerate(_parameter_names(model, network, optimizer)):
        slots = state["state"].get(index)
        if slots is None:
            continue
        shape, mapped = new_state[name].shape, {}
        for key, value in slots.items():
            if not hasattr(value, "shape") or tuple(value.shape) != tuple(old_state[name].shape):
                mapped[key] = value  # Adam's step count
                continue
            old = value.detach().cpu().numpy()
            if name == "log_std":  # PPO/A2C's Gaussian log-std, one per action
                new = np.zeros(shape, old.dtype)
                keep = action_src >= 0
                new[keep] = old[action_src[keep]]
            else:
                copy, units, layout = maps[name]
                if layout == "dense":  # torch (out, in) <-> Keras (in, out)
                    new = map_slot(copy, old.T, shape[::-1], units).T
                elif layout == "conv":  # torch (out, in, kh, kw) <-> Keras (kh, kw, in, out)
                    keras_shape = (shape[2], shape[3], shape[1], shape[0])
                    new = map_slot(copy, old.transpose(2, 3, 1, 0), keras_shape, units).transpose(3, 2, 0, 1)
                else:
                    new = map_slot(copy, old, shape, units)
            mapped[key] = torch.as_tensor(np.ascontiguousarray(new), dtype=value.dtype, device=value.device)
        out["state"][index] = mapped
    return out


def transplant(model: Any, spec: dict, env: Any = None, optimizer_state: str = "carry",
               observation_space: Any = None, action_space: Any = None, replay_buffer: str = "auto",
               new_action_probability: Optional[float] = None) -> Any:
    """A new SB3 model of ``model``'s algorithm, changed by ``spec`` (see the module docstring).

    Args:
        model: a trained SB3 ``DQN``, ``PPO``, ``A2C``, ``SAC`` or ``TD3`` with an ``MlpPolicy``; never modified.
        spec: the surgery spec (:mod:`keras_surgeon_rl.spec`): ``inputs`` (observation features),
            ``outputs`` (actions), ``units`` (``q_0``, ``pi_1``, ``qf0_0``, …), ``init``.
        env: an environment of the new setting; required when observations or Box actions gain IDs
            (their bounds come from its spaces); the new model is attached to it.
        optimizer_state: ``"carry"`` (Adam's moments follow the parameters by ID, new entries 0, step
            counts kept) or ``"fresh"``.
        observation_space, action_space: the new setting's spaces when no ``env`` is at hand (they
            bound the new IDs); default ``env``'s.
        replay_buffer: off-policy agents (DQN, SAC, TD3): ``"carry"`` the stored transitions, their
            observations and actions by ID (new features and Box actions 0), ``"fresh"`` (empty), or
            ``"auto"``: carry when the observations keep their IDs (added actions are fine: the stored
            ones keep their meaning), else fresh (stored observations lack the new features).
        new_action_probability: PPO/A2C with Discrete actions only: new actions are allowed and
            start with zero weights and a bias that gives each about this probability (exactly so
            at the states' typical logit scale; see :func:`_approximate_bias`). The old actions'
            probabilities shrink accordingly: an approximate start, stated in the new model's
            ``surgery_notes`` and a logged warning.

    Returns:
        The new model (same class and hyperparameters; ``policy_kwargs["net_arch"]`` follows resized
        layers; SAC's automatic target entropy follows the action count; action noise goes by action
        ID). Target networks are transplanted with the same spec.

    Raises:
        SurgeryError: an unsupported algorithm, policy, space or spec, before anything is built.
    """
    from gymnasium import spaces

    from keras_surgeon_rl import surgeon
    from keras_surgeon_rl.slots import plan_maps

    if optimizer_state not in ("carry", "fresh"):
        raise SurgeryError(f"optimizer_state={optimizer_state!r}: use 'carry' or 'fresh'")
    if replay_buffer not in ("auto", "carry", "fresh"):
        raise SurgeryError(f"replay_buffer={replay_buffer!r}: use 'auto', 'carry' or 'fresh'")
    kind = _kind(model)
    convs = _check(model, kind)
    other = sorted(set(spec) - {"inputs", "outputs", "units", "init"})
    if other:
        raise SurgeryError(f"spec keys {other}: SB3 agents take inputs, outputs, units and init so far (SB3 rebuilds "
                           "its networks from net_arch, so an inserted or deleted layer needs a net_arch rule: planned)")
    old_state = _state(model.policy)
    activation = mirror.ACTIVATIONS[_activation(model).__name__]
    n_obs, n_act = int(model.observation_space.shape[0]), _n(model.action_space)  # images: channels first
    obs, act = _change(spec, "inputs", "observation input"), _change(spec, "outputs", "action output")
    in_old, in_new = _ids(obs, n_obs)
    act_old, act_new = _ids(act, n_act)
    discrete = isinstance(model.action_space, spaces.Discrete)
    observation_space = _box(model.observation_space, in_old, in_new,
                             observation_space or getattr(env, "observation_space", None), "observation")
    action_space = _action_space(model, act_old, act_new, action_space or getattr(env, "action_space", None))
    nets = mirror.networks(kind, old_state, convs)
    known = {n for net in nets for n in mirror.layer_names(net)}
    unknown = sorted(set(spec.get("units") or {}) - known)
    fixed = sorted(k for k in spec.get("units") or {} if k.startswith("cnn_"))
    if fixed:
        raise SurgeryError(f"units {fixed}: SB3 builds NatureCNN with fixed filter counts (32, 64, 64), so a resized "
                           "convolution could not be rebuilt; resize 'features' or the net_arch layers instead")
    if unknown:
        raise SurgeryError(f"units names {unknown}, not layers of this {type(model).__name__}; its layers: "
                           f"{sorted(known)}")
    approximate = new_action_probability is not None
    if approximate and not (kind == "actor_critic" and discrete):
        raise SurgeryError("new_action_probability is for PPO/A2C with Discrete actions (a softmax policy); "
                           f"{type(model).__name__} keeps new actions exact without it")
    if approximate and not 0 < new_action_probability * max(1, len(set(act_new) - set(act_old))) < 1:
        raise SurgeryError(f"new_action_probability={new_action_probability}: give p > 0 with p times the number of "
                           "new actions below 1")
    obs_shape = tuple(model.observation_space.shape)
    plans = [(net, surgeon.plan(built := mirror.build(net, old_state, obs_shape, n_act, activation),
                                _network_spec(spec, kind, net, obs, act, discrete, approximate)), built)
             for net in nets]
    new_state, maps, mirrors = dict(old_state), {}, {}
    for net, plan, built in plans:
        new_net = surgeon.transplant_planned(built, plan)
        mirrors[net.name] = new_net
        new_state.update(mirror.state_dict_of(new_net, net, old_state))
        layer_maps: dict = {}
        plan_maps(plan, layer_maps)
        pairs = [pair for chain in net.chains for pair in mirror.params(chain, old_state)]
        layouts = {layer: "dense" for layer, _ in pairs}
        if net.extractor is not None:
            for prefix in net.extractor.prefixes:
                pairs += [(f"cnn_{k}", f"{prefix}.cnn.{i}") for k, (i, _s) in enumerate(net.extractor.convs)]
                pairs.append(("features", f"{prefix}.linear.0"))
            layouts.update({f"cnn_{k}": "conv" for k in range(len(net.extractor.convs))}, features="dense")
        for layer, prefix in pairs:
            _old, copy, units = layer_maps[(layer, "kernel")]
            maps[f"{prefix}.weight"] = (copy, units, layouts[layer])
            if (layer, "bias") in layer_maps:
                maps[f"{prefix}.bias"] = (layer_maps[(layer, "bias")][1], units, "bias")
    action_src = index_of(act_old, act_new)
    if "log_std" in old_state:  # PPO/A2C's Gaussian: a parameter per action
        log_std = np.full(len(act_new), float(model.policy.log_std_init), dtype=old_state["log_std"].dtype)
        log_std[action_src >= 0] = old_state["log_std"][action_src[action_src >= 0]]
        new_state["log_std"] = log_std
    notes = []
    if approximate and (action_src < 0).any():
        gained = np.flatnonzero(action_src < 0)
        bias = _approximate_bias(model, new_action_probability, len(gained))
        new_state["action_net.weight"][gained] = 0.0
        new_state["action_net.bias"][gained] = bias
        notes.append(f"approximate: new actions {[act_new[i] for i in gained]} start with zero weights and bias "
                     f"{bias:.3f}, about probability {new_action_probability:g} each; the old actions' "
                     "probabilities shrink by that share")
        logger.warning("%s: %s", type(model).__name__, notes[-1])
    optimizers = {net.optimizer: (_moments(model, net, old_state, new_state, maps, action_src)
                                  if optimizer_state == "carry" else None) for net in nets if net.optimizer}
    new = _rebuild(model, kind, nets, mirrors, new_state, observation_space, action_space, action_src, env, optimizers)
    new.surgery_notes = notes
    if replay_buffer == "carry" or (replay_buffer == "auto" and in_old == in_new):
        _carry_buffer(model, new, index_of(in_old, in_new), act_old, act_new)
    return new


def _carry_buffer(old: Any, new: Any, obs_src: np.ndarray, act_old: list, act_new: list) -> None:
    """The old replay buffer's transitions in the new model's: observations and actions by ID."""
    from gymnasium import spaces

    a, b = getattr(old, "replay_buffer", None), getattr(new, "replay_buffer", None)
    if a is None or b is None:
        return
    if a.buffer_size != b.buffer_size or a.n_envs != b.n_envs or a.optimize_memory_usage != b.optimize_memory_usage:
        raise SurgeryError("the new replay buffer differs in size or layout from the old one; pass "
                           "replay_buffer='fresh'")
    keep = obs_src >= 0
    for name in ("observations", "next_observations"):
        if getattr(a, name, None) is not None and getattr(b, name, None) is not None:
            target = getattr(b, name)
            target[...] = 0
            target[:, :, keep] = getattr(a, name)[:, :, obs_src[keep]]  # (size, envs, features or channels, …)
    if isinstance(old.action_space, spaces.Discrete):
        to_new = index_of(act_new, act_old)  # the new index of each old action
        stored = a.actions[: a.size() if not a.full else None].astype(np.int64)
        if (to_new[stored] < 0).any():
            gone = sorted({act_old[i] for i in np.unique(stored) if to_new[i] < 0})
            raise SurgeryError(f"the replay buffer holds transitions with the removed actions {gone}; pass "
                               "replay_buffer='fresh'")
        b.actions[...] = np.where(to_new[a.actions.astype(np.int64)] >= 0, to_new[a.actions.astype(np.int64)], 0)
    else:
        action_src = index_of(act_old, act_new)
        take = action_src >= 0
        b.actions[...] = 0
        b.actions[..., take] = a.actions[..., action_src[take]]
    for name in ("rewards", "dones", "timeouts"):
        getattr(b, name)[...] = getattr(a, name)
    b.pos, b.full = a.pos, a.full
    logger.info("carried %d transitions of the replay buffer", a.size())


def _approximate_bias(model: Any, p: float, k: int, n: int = 1024, seed: int = 0) -> float:
    """The logit ``b`` that gives each of ``k`` new actions probability ``p`` at the typical state.

    With new logits ``b`` beside the old logits ``l(s)``, a new action's probability is ``e^b / (Z(s) +
    k e^b)`` with ``Z(s) = sum exp l(s)``; ``b = log(p Z / (1 - k p))`` makes it exactly ``p`` where
    ``Z(s) = Z``. ``Z`` is the geometric mean of ``Z(s)`` over the observations of the rollout buffer
    (the states the policy saw last), else random observations within the observation space.
    """
    import torch

    buffer = getattr(model, "rollout_buffer", None)
    observations = None
    if buffer is not None and getattr(buffer, "full", False):
        observations = np.asarray(buffer.observations).reshape(-1, model.observation_space.shape[0])
    if observations is None or not len(observations):
        observations = _sample_observations(model.observation_space, n, np.random.default_rng(seed))
    policy = model.policy
    with torch.no_grad():  # the action net's raw logits (the distribution's are normalized)
        x = torch.as_tensor(observations, dtype=torch.float32, device=model.device)
        latent_pi = policy.mlp_extractor.forward_actor(policy.extract_features(x, policy.pi_features_extractor))
        log_z = float(torch.logsumexp(policy.action_net(latent_pi), dim=-1).mean())
    return float(np.log(p / (1 - k * p)) + log_z)


def _net_arch(kind: str, nets: list, mirrors: dict) -> Any:
    widths = {net.name: [mirror.hidden_widths(mirrors[net.name], c) for c in net.chains] for net in nets}
    if kind == "dqn":
        return widths["q_net"][0]
    if kind == "actor_critic":
        return {"pi": widths["policy"][0], "vf": widths["policy"][1]}
    critics = widths["critic"] + widths["critic_target"]
    if any(c != critics[0] for c in critics):
        raise SurgeryError(f"the critics' hidden layers would differ ({critics}); SB3 builds every critic from one "
                           "net_arch['qf']: resize qf0_k and qf1_k alike")
    return {"pi": widths["actor"][0], "qf": critics[0]}


def _remap_noise(noise: Any, action_src: np.ndarray) -> Any:
    """An action noise (Normal, Ornstein-Uhlenbeck) with its per-action arrays by action ID; new actions
    get mean 0 and the old actions' mean spread."""
    if noise is None:
        return None
    n_old = int(action_src.max()) + 1 if (action_src >= 0).any() else 0
    for key, value in vars(noise).items():
        if isinstance(value, np.ndarray) and value.shape == (n_old,) and n_old:
            new = np.full(len(action_src), value.mean() if "sigma" in key else 0.0, dtype=value.dtype)
            new[action_src >= 0] = value[action_src[action_src >= 0]]
            setattr(noise, key, new)
    return noise


def _rebuild(model: Any, kind: str, nets: list, mirrors: dict, state: dict, observation_space: Any,
             action_space: Any, action_src: np.ndarray, env: Any, optimizers: dict) -> Any:
    """The new model through SB3's own save format: the old model's data with the new spaces, ``net_arch``
    and space-dependent settings, the new parameters and optimizer states, then ``load``."""
    import copy

    import torch
    from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file

    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    data, params, variables = load_from_zip_file(buffer, device="cpu")
    kwargs = dict(data.get("policy_kwargs") or {})
    kwargs["net_arch"] = _net_arch(kind, nets, mirrors)
    with_cnn = next((net for net in nets if net.extractor is not None), None)
    if with_cnn is not None:  # NatureCNN's feature layer: its width is a constructor argument
        features = int(mirrors[with_cnn.name].get_layer("features").units)
        kwargs["features_extractor_kwargs"] = {**kwargs.get("features_extractor_kwargs", {}), "features_dim": features}
    n_old, n_new = _n(model.action_space), len(action_src)
    data.update(observation_space=observation_space, action_space=action_space, policy_kwargs=kwargs,
                _last_obs=None, _last_original_obs=None)
    if kind == "sac" and data.get("target_entropy") == -float(n_old):  # "auto": -|A|, recomputed
        data["target_entropy"] = -float(n_new)
    if data.get("action_noise") is not None:
        data["action_noise"] = _remap_noise(copy.deepcopy(data["action_noise"]), action_src)
    params["policy"] = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in state.items()}
    for key, carried in optimizers.items():
        params[key] = carried if carried is not None else {"state": {}, "param_groups": params[key]["param_groups"]}
    out = io.BytesIO()
    save_to_zip_file(out, data=data, params=params, pytorch_variables=variables)
    out.seek(0)
    new = type(model).load(out, env=env, device=model.device)
    logger.info("transplanted %s: observations %s -> %s, actions %s -> %s", type(model).__name__,
                model.observation_space, observation_space, model.action_space, action_space)
    return new


def load(path: Any, algo: Any = None, env: Any = None) -> Any:
    """An SB3 agent saved at ``path``, of the algorithm its file names (or ``algo``).

    The algorithm is read from the saved policy class: DQN, SAC and TD3 policies name theirs; an
    actor-critic policy with a clip range is a PPO, else an A2C.

    Raises:
        SurgeryError: the file holds another kind of policy (pass ``algo=``).
    """
    import stable_baselines3 as sb
    from stable_baselines3.common.save_util import load_from_zip_file

    if algo is None:
        data, _params, _variables = load_from_zip_file(path, device="cpu")
        policy = (data or {}).get("policy_class")
        home = getattr(policy, "__module__", "")
        algo = next((getattr(sb, a) for a in ("DQN", "SAC", "TD3") if f".{a.lower()}." in home), None)
        if algo is None and getattr(policy, "__name__", "") in ("ActorCriticPolicy", "MlpPolicy"):
            algo = sb.PPO if "clip_range" in data else sb.A2C
        if algo is None:
            raise SurgeryError(f"{path}: holds a {getattr(policy, '__name__', policy)!r} policy keras_surgeon_rl.sb3 "
                               "cannot place; pass algo= (DQN, PPO, A2C, SAC or TD3)")
    return algo.load(path, env=env, device="cpu")


def transplant_zip(src: Any, spec: dict, dst: Any, env: Any = None, optimizer_state: str = "carry",
                   algo: Any = None, replay_buffer: Any = None, replay_buffer_dst: Any = None, **kwargs: Any) -> Any:
    """:func:`transplant` for a saved agent: reads ``src`` (an SB3 ``.zip``, see :func:`load`), writes
    ``dst``; returns the new model.

    Args:
        src: the saved agent (path or file object).
        spec: the surgery spec.
        dst: where to save the new agent.
        env: an environment of the new setting (see :func:`transplant`).
        optimizer_state: ``"carry"`` or ``"fresh"``.
        algo: the algorithm class; default: read from the file.
        replay_buffer: the old agent's replay buffer file (``save_replay_buffer``), to carry by ID
            into ``replay_buffer_dst`` (as :func:`transplant`'s ``replay_buffer="auto"``, or the
            policy given in ``kwargs``).
        replay_buffer_dst: where to write the new agent's replay buffer (required with ``replay_buffer``).
        **kwargs: more :func:`transplant` options (``observation_space``, ``new_action_probability``, …).
    """
    if (replay_buffer is None) != (replay_buffer_dst is None):
        raise SurgeryError("give both replay_buffer= (the old agent's buffer file) and replay_buffer_dst= (where the "
                           "new one goes), or neither")
    old = load(src, algo)
    if replay_buffer is not None:
        old.load_replay_buffer(replay_buffer)
    new = transplant(old, spec, env=env, optimizer_state=optimizer_state, **kwargs)
    new.save(dst)
    if replay_buffer_dst is not None:
        new.save_replay_buffer(replay_buffer_dst)
    return new


def transplant_vec_normalize(stats: Any, spec: dict, venv: Any) -> Any:
    """``VecNormalize`` statistics for the new setting: the observations' running mean and variance by
    feature ID (a new feature starts at mean 0, variance 1; the count is shared), the returns' as they were.

    Args:
        stats: the old ``VecNormalize`` (it is not changed) or the path of its saved pickle.
        spec: the surgery spec (its ``inputs``).
        venv: the new setting's ``VecEnv`` to wrap.

    Returns:
        A ``VecNormalize`` around ``venv`` with the carried statistics and the old settings (clipping,
        gamma, ``training``).

    Raises:
        SurgeryError: dict observations, or a ``venv`` whose observations do not have the new IDs' count.
    """
    import pickle

    from gymnasium import spaces

    if isinstance(stats, (str, os.PathLike)):
        with open(stats, "rb") as f:
            blob = f.read()
    else:
        blob = pickle.dumps(stats)  # its settings and statistics, without the environment (VecNormalize.save)
    old, new = pickle.loads(blob), pickle.loads(blob)
    if isinstance(old.observation_space, spaces.Dict):
        raise SurgeryError("VecNormalize over dict observations: keras_surgeon_rl.sb3 reads 1-D Box observations "
                           "so far")
    n_obs = int(old.observation_space.shape[0])
    in_old, in_new = _ids(_change(spec, "inputs", "observation input"), n_obs)
    if tuple(venv.observation_space.shape) != (len(in_new),):
        raise SurgeryError(f"the new VecEnv's observations have shape {venv.observation_space.shape}; the spec's new "
                           f"observation IDs number {len(in_new)}")
    new.venv = None
    if old.norm_obs:
        src = index_of(in_old, in_new)
        rms = new.obs_rms
        mean, var = np.zeros(len(in_new)), np.ones(len(in_new))
        mean[src >= 0], var[src >= 0] = old.obs_rms.mean[src[src >= 0]], old.obs_rms.var[src[src >= 0]]
        rms.mean, rms.var = mean, var
    new.observation_space = venv.observation_space
    new.set_venv(venv)
    return new


def layers(model: Any) -> list[tuple[str, str, tuple, int]]:
    """``(network, mirror layer, weight shape as a Keras kernel (in, out), parameters)`` of every Linear the
    surgery can change, for ``inspect``."""
    kind = _kind(model)
    convs = _check(model, kind)
    state = _state(model.policy)
    out = []
    for net in mirror.networks(kind, state, convs):
        for chain in net.chains:
            for name, prefix in mirror.params(chain, state):
                w = state[f"{prefix}.weight"]
                size = w.size + state.get(f"{prefix}.bias", w[:0]).size
                out.append((net.name, name, tuple(w.shape[::-1]), int(size)))
    return out


def verify(old: Any, new: Any, spec: dict, n: int = 256, seed: int = 0) -> float:
    """The largest difference between ``old`` and ``new`` on what the spec keeps.

    On ``n`` random observations (uniform within the old space's finite bounds, else standard normal)
    the new model sees the old features at their new places and zeros at new ones; critics get random
    old actions (new action inputs zero). Compared: Q-values of the old actions (DQN, online and
    target); log-probabilities of the old actions (Discrete) or the Gaussian's means and standard
    deviations on the old actions (Box), and values (PPO, A2C); the squashed Gaussian's parameters
    (SAC) or the actions (TD3, online and target) on the old actions, and every critic's Q-values.
    """
    import torch
    from gymnasium import spaces

    kind = _kind(old)
    n_obs, n_act = int(old.observation_space.shape[0]), _n(old.action_space)
    in_old, in_new = _ids(_change(spec, "inputs", "observation input"), n_obs)
    act_old, act_new = _ids(_change(spec, "outputs", "action output"), n_act)
    rng = np.random.default_rng(seed)
    x_old = _sample_observations(old.observation_space, n, rng)
    x_new = _embed(x_old, in_old, in_new)  # images: by channel (SB3's channels-first axis)
    cols = index_of(act_new, act_old)
    if (cols < 0).any():
        raise SurgeryError(f"old actions {[a for a, c in zip(act_old, cols) if c < 0]} are not in the new model")
    a, b = torch.as_tensor(x_old, device=old.device), torch.as_tensor(x_new, device=new.device)
    diffs = []

    def differ(u, v, columns=None):
        u, v = np.asarray(u.detach().cpu()), np.asarray(v.detach().cpu())
        diffs.append(float(np.abs(u - (v if columns is None else v[:, columns])).max()))

    with torch.no_grad():
        if kind == "dqn":
            for net in ("q_net", "q_net_target"):
                differ(getattr(old.policy, net)(a), getattr(new.policy, net)(b), cols)
        elif kind == "actor_critic":
            differ(old.policy.predict_values(a), new.policy.predict_values(b))
            da, db = old.policy.get_distribution(a), new.policy.get_distribution(b)
            if isinstance(old.action_space, spaces.Discrete):
                actions = rng.integers(n_act, size=n)
                differ(da.log_prob(torch.as_tensor(actions, device=old.device)),
                       db.log_prob(torch.as_tensor(cols[actions], device=new.device)))
            else:
                differ(da.distribution.mean, db.distribution.mean, cols)
                differ(da.distribution.stddev, db.distribution.stddev, cols)
        else:
            if kind == "sac":
                (mu_a, ls_a, _), (mu_b, ls_b, _) = (m.policy.actor.get_action_dist_params(x)
                                                    for m, x in ((old, a), (new, b)))
                differ(mu_a, mu_b, cols)
                differ(ls_a, ls_b, cols)
            else:
                for net in ("actor", "actor_target"):
                    differ(getattr(old.policy, net)(a), getattr(new.policy, net)(b), cols)
            acts = rng.uniform(-1, 1, size=(n, n_act)).astype(np.float32)
            acts_new = _embed(acts, act_old, act_new)
            for net in ("critic", "critic_target"):
                qa = getattr(old.policy, net)(a, torch.as_tensor(acts, device=old.device))
                qb = getattr(new.policy, net)(b, torch.as_tensor(acts_new, device=new.device))
                for u, v in zip(qa, qb):
                    differ(u, v)
    return max(diffs)


def _sample_observations(space: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` observations of a Box: uniform where both bounds are finite, standard normal elsewhere."""
    low, high = space.low, space.high
    finite = np.isfinite(low) & np.isfinite(high)
    x = rng.normal(size=(n,) + low.shape).astype(np.float32)
    x[:, finite] = rng.uniform(low[finite], high[finite], size=(n, int(finite.sum())))
    return x


def _embed(x: np.ndarray, old_ids: list, new_ids: list) -> np.ndarray:
    """``x``'s features (axis 1: a vector's entries, an image's channels) at their new positions; zeros at new IDs."""
    out = np.zeros((len(x), len(new_ids)) + x.shape[2:], np.float32)
    src = index_of(old_ids, new_ids)
    out[:, src >= 0] = x[:, src[src >= 0]]
    return out
