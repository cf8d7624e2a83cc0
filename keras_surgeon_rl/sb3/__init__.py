"""Surgery for Stable-Baselines3 agents: the same specs, unit IDs and rules as for Keras models.

``transplant(model, spec, env=None)`` returns a new SB3 model of the same algorithm whose networks
are the old ones changed by ``spec`` (observation features and actions by ID, hidden layers resized
by their place in ``net_arch``), with every parameter that both networks have copied and Adam's
moments carried through the same index maps::

    from keras_surgeon_rl import sb3

    spec = {"inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]},
            "outputs": {"old": ["left", "right"], "new": ["left", "right", "wait"]},   # DQN: keep_greedy
            "units": {"q_0": 128}}                                                      # first hidden layer
    new_model = sb3.transplant(model, spec, env=new_env)
    sb3.verify(model, new_model, spec)        # largest difference on the old IDs
    new_model.learn(10_000)

Supported so far: DQN, PPO and A2C with MLP policies (``MlpPolicy``) on 1-D ``Box`` observations,
``Discrete`` actions (DQN, and PPO/A2C without new actions) and ``Box`` actions (PPO/A2C: a new
action's mean starts at 0 from zero weights, its ``log_std`` at the policy's ``log_std_init``, so the
old actions' log-probabilities are unchanged). Layer names: ``q_0``, ``q_1``, …, ``q`` (DQN);
``pi_0``, …, ``action_net``, ``vf_0``, …, ``value_net`` (PPO, A2C). Anything else is refused up
front with :class:`~keras_surgeon_rl.errors.SurgeryError`.

The networks are planned on Keras 3 mirrors (:mod:`keras_surgeon_rl.sb3.mirror`); with
``KERAS_BACKEND=torch`` that needs no TensorFlow.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Optional

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.sb3 import mirror

logger = logging.getLogger(__name__)

__all__ = ["transplant", "transplant_zip", "verify"]


def _kind(model: Any) -> str:
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy

    if isinstance(model.policy, DQNPolicy):
        return "dqn"
    if isinstance(model.policy, ActorCriticPolicy):
        return "actor_critic"
    raise SurgeryError(f"{type(model).__name__} with {type(model.policy).__name__}: keras_surgeon_rl.sb3 supports DQN, "
                       "PPO and A2C so far (SAC and TD3 are planned)")


def _check(model: Any) -> None:
    """Refuse what the mirror cannot represent, before anything is built."""
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import FlattenExtractor

    name = type(model).__name__
    extractor = getattr(model.policy, "features_extractor", None) or getattr(model.policy.q_net, "features_extractor")
    if not isinstance(extractor, FlattenExtractor):
        raise SurgeryError(f"{name}'s features extractor is a {type(extractor).__name__}; keras_surgeon_rl.sb3 reads "
                           "MlpPolicy (FlattenExtractor) networks so far: CNN and custom extractors are planned")
    space = model.observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise SurgeryError(f"{name}'s observation space is {space}; keras_surgeon_rl.sb3 supports 1-D Box observations "
                           "so far")
    if getattr(model.policy, "share_features_extractor", True) is False:
        pass  # a FlattenExtractor has no parameters: separate copies change nothing
    activation = model.policy.activation_fn.__name__
    if mirror.ACTIVATIONS.get(activation) is None:
        raise SurgeryError(f"{name}'s activation {activation} has no Keras counterpart here; use one of "
                           f"{sorted(k for k, v in mirror.ACTIVATIONS.items() if v)}")


def _named_spec(spec: dict, kind: str) -> dict:
    """The spec for the mirror: unnamed ``outputs`` go to the action head (``q`` or ``action_net``), and a
    DQN's new actions default to ``keep_greedy`` (the greedy policy is unchanged)."""
    spec = dict(spec)
    outputs = spec.get("outputs")
    head = "q" if kind == "dqn" else "action_net"
    if outputs and ("new" in outputs or "old" in outputs):
        outputs = {head: outputs}
    if outputs and kind == "dqn" and head in outputs:
        outputs = {**outputs, head: {"init": "keep_greedy", **outputs[head]}}
    if outputs:
        spec["outputs"] = outputs
    return spec


def _ids(change: Optional[dict], n_old: int) -> tuple[list, list]:
    """Old and new unit IDs of a spec change (default ``0..n-1`` and unchanged)."""
    if not change:
        return list(range(n_old)), list(range(n_old))
    old = list(change.get("old", range(n_old)))
    return old, list(change.get("new", old))


def _box(old_space: Any, old_ids: list, new_ids: list, env_space: Any, what: str) -> Any:
    """The new Box: the old bounds by ID; new IDs take the bounds of ``env_space`` (required then)."""
    from gymnasium import spaces

    if old_ids == new_ids:
        return old_space
    src = index_of(old_ids, new_ids)
    if env_space is not None:
        if tuple(env_space.shape) != (len(new_ids),):
            raise SurgeryError(f"env's {what} space has shape {env_space.shape}, the spec's new {what} IDs number "
                               f"{len(new_ids)}: {new_ids}")
        return env_space
    if (src < 0).any():
        new = [i for i, s in zip(new_ids, src) if s < 0]
        raise SurgeryError(f"new {what} IDs {new} need bounds: pass env= (an environment of the new setting), whose "
                           f"{what} space gives them")
    low, high = np.asarray(old_space.low)[src], np.asarray(old_space.high)[src]
    return spaces.Box(low=low, high=high, dtype=old_space.dtype)


def _action_space(model: Any, kind: str, spec: dict, env: Any) -> tuple[Any, list, list]:
    from gymnasium import spaces

    space = model.action_space
    head = "q" if kind == "dqn" else "action_net"
    change = (spec.get("outputs") or {}).get(head)
    n_old = int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))
    old_ids, new_ids = _ids(change, n_old)
    if isinstance(space, spaces.Discrete):
        if kind == "actor_critic" and any(i not in old_ids for i in new_ids):
            raise SurgeryError(f"new actions {[i for i in new_ids if i not in old_ids]} for {type(model).__name__}: a "
                               "softmax policy cannot gain an action without changing the old actions' probabilities; "
                               "an explicit approximate start is planned (until then: DQN keeps them exact)")
        if env is not None and int(env.action_space.n) != len(new_ids):
            raise SurgeryError(f"env has {env.action_space.n} actions, the spec's new action IDs number {len(new_ids)}")
        return (space if len(new_ids) == n_old else spaces.Discrete(len(new_ids))), old_ids, new_ids
    return _box(space, old_ids, new_ids, getattr(env, "action_space", None), "action"), old_ids, new_ids


def _state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _optimizer_state(model: Any, kind: str, old_state: dict, new_state: dict, maps: dict,
                     action_src: np.ndarray) -> dict:
    """The policy optimizer's state_dict with Adam's moments carried by ID (new entries zero)."""
    from keras_surgeon_rl.slots import map_slot

    optimizer = model.policy.optimizer
    state = optimizer.state_dict()
    names = {id(p): n for n, p in model.policy.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    out = {"state": {}, "param_groups": state["param_groups"]}
    for index, name in enumerate(order):
        slots = state["state"].get(index)
        if slots is None:
            continue
        shape = new_state[name].shape
        mapped = {}
        for key, value in slots.items():
            if not hasattr(value, "shape") or tuple(value.shape) != tuple(old_state[name].shape):
                mapped[key] = value  # Adam's step count
                continue
            old = value.detach().cpu().numpy()
            if name == "log_std":
                new = np.zeros(shape, old.dtype)
                keep = action_src >= 0
                new[keep] = old[action_src[keep]]
            else:
                layer, what = maps[name]
                copy, units = layer
                if what == "weight":
                    new = map_slot(copy, old.T, shape[::-1], units).T
                else:
                    new = map_slot(copy, old, shape, units)
            mapped[key] = _tensor_like(value, new)
        out["state"][index] = mapped
    return out


def _tensor_like(value: Any, array: np.ndarray) -> Any:
    import torch

    return torch.as_tensor(np.ascontiguousarray(array), dtype=value.dtype, device=value.device)


def transplant(model: Any, spec: dict, env: Any = None, optimizer_state: str = "carry") -> Any:
    """A new SB3 model of ``model``'s algorithm, changed by ``spec`` (see the module docstring).

    Args:
        model: a trained SB3 ``DQN``, ``PPO`` or ``A2C`` with an ``MlpPolicy``; never modified.
        spec: the surgery spec (:mod:`keras_surgeon_rl.spec`): ``inputs`` (observation features),
            ``outputs`` (actions; for PPO/A2C only with Box actions), ``units`` (``q_0``, ``pi_1``, …),
            ``init``.
        env: an environment of the new setting; required when observations or Box actions gain IDs
            (their bounds come from its spaces); the new model is attached to it.
        optimizer_state: ``"carry"`` (Adam's moments follow the parameters by ID, new entries 0, step
            count kept) or ``"fresh"``.

    Returns:
        The new model (same class and hyperparameters; ``policy_kwargs["net_arch"]`` follows resized
        layers). For DQN the target network is transplanted with the same spec.

    Raises:
        SurgeryError: an unsupported algorithm, policy, space or spec, before anything is built.
    """
    from keras_surgeon_rl import surgeon

    if optimizer_state not in ("carry", "fresh"):
        raise SurgeryError(f"optimizer_state={optimizer_state!r}: use 'carry' or 'fresh'")
    kind = _kind(model)
    _check(model)
    spec = _named_spec(spec, kind)
    old_state = _state(model.policy)
    activation = mirror.ACTIVATIONS[model.policy.activation_fn.__name__]
    n_in = int(model.observation_space.shape[0])
    in_old, in_new = _ids(spec.get("inputs"), n_in)
    observation_space = _box(model.observation_space, in_old, in_new, getattr(env, "observation_space", None),
                             "observation")
    action_space, act_old, act_new = _action_space(model, kind, spec, env)
    new_state, maps, arch = dict(old_state), {}, {}
    from keras_surgeon_rl.slots import plan_maps

    for network, chains in mirror.chains(kind, old_state).items():
        old_net = mirror.build(chains, old_state, n_in, activation, network)
        new_net = surgeon.transplant(old_net, spec)
        new_state.update(mirror.state_dict_of(new_net, chains, old_state))
        arch[network] = mirror.net_arch(new_net, chains)
        layer_maps: dict = {}
        plan_maps(surgeon.plan(old_net, spec), layer_maps)
        for chain in chains:
            for layer, prefix in mirror._params(chain, old_state):
                units = layer_maps[(layer, "kernel")][2]
                maps[f"{prefix}.weight"] = ((layer_maps[(layer, "kernel")][1], units), "weight")
                if (layer, "bias") in layer_maps:
                    maps[f"{prefix}.bias"] = ((layer_maps[(layer, "bias")][1], units), "bias")
    action_src = index_of(act_old, act_new)
    if "log_std" in old_state:
        log_std = np.full(len(act_new), float(model.policy.log_std_init), dtype=old_state["log_std"].dtype)
        keep = action_src >= 0
        log_std[keep] = old_state["log_std"][action_src[keep]]
        new_state["log_std"] = log_std
    return _rebuild(model, kind, new_state, arch, observation_space, action_space, env,
                    _optimizer_state(model, kind, old_state, new_state, maps, action_src)
                    if optimizer_state == "carry" else None)


def _rebuild(model: Any, kind: str, state: dict, arch: dict, observation_space: Any, action_space: Any, env: Any,
             optimizer: Optional[dict]) -> Any:
    """The new model through SB3's own save format: the old model's data with the new spaces and
    ``net_arch``, the new parameters, then ``load`` (every hyperparameter stays as it was)."""
    import torch
    from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file

    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    data, params, variables = load_from_zip_file(buffer, device="cpu")
    kwargs = dict(data.get("policy_kwargs") or {})
    if kind == "dqn":
        kwargs["net_arch"] = arch["q_net"][0]
    else:
        kwargs["net_arch"] = {"pi": arch["policy"][0], "vf": arch["policy"][1]}
    data.update(observation_space=observation_space, action_space=action_space, policy_kwargs=kwargs,
                _last_obs=None, _last_original_obs=None)
    params["policy"] = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in state.items()}
    if optimizer is not None:
        params["policy.optimizer"] = optimizer
    else:
        params["policy.optimizer"] = {"state": {}, "param_groups": params["policy.optimizer"]["param_groups"]}
    out = io.BytesIO()
    save_to_zip_file(out, data=data, params=params, pytorch_variables=variables)
    out.seek(0)
    new = type(model).load(out, env=env, device=model.device)
    logger.info("transplanted %s: observations %s -> %s, actions %s -> %s", type(model).__name__,
                model.observation_space, observation_space, model.action_space, action_space)
    return new


def transplant_zip(src: Any, spec: dict, dst: Any, env: Any = None, optimizer_state: str = "carry",
                   algo: Any = None) -> Any:
    """:func:`transplant` for a saved agent: reads ``src`` (an SB3 ``.zip``), writes ``dst``; returns the new model.

    Args:
        src: the saved agent (path or file object).
        spec: the surgery spec.
        dst: where to save the new agent.
        env: an environment of the new setting (see :func:`transplant`).
        optimizer_state: ``"carry"`` or ``"fresh"``.
        algo: the algorithm class (``DQN``, ``PPO``, ``A2C``); default: read from the file (a DQN
            policy is a DQN; an actor-critic one with a clip range a PPO, else an A2C).
    """
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.save_util import load_from_zip_file
    from stable_baselines3.dqn.policies import DQNPolicy

    if algo is None:
        data, _params, _variables = load_from_zip_file(src, device="cpu")
        policy = data.get("policy_class") if data else None
        if isinstance(policy, type) and issubclass(policy, DQNPolicy):
            algo = DQN
        elif isinstance(policy, type) and issubclass(policy, ActorCriticPolicy):
            algo = PPO if "clip_range" in data else A2C
        else:
            raise SurgeryError(f"{src}: holds a {getattr(policy, '__name__', policy)!r} policy; keras_surgeon_rl.sb3 "
                               "reads DQN, PPO and A2C saves so far (or pass algo=)")
    new = transplant(algo.load(src, device="cpu"), spec, env=env, optimizer_state=optimizer_state)
    new.save(dst)
    return new


def verify(old: Any, new: Any, spec: dict, n: int = 256, seed: int = 0) -> float:
    """The largest difference between ``old`` and ``new`` on what the spec keeps.

    On ``n`` random observations (within the old space's finite bounds, else standard normal), the new
    model sees the old features at their new places and zeros at new ones. Compared: DQN's Q-values of
    the old actions (online and target network); PPO/A2C's log-probabilities of the old actions (Box:
    over the old action dimensions) and values.
    """
    import torch

    kind = _kind(old)
    spec = _named_spec(spec, kind)
    n_in = int(old.observation_space.shape[0])
    in_old, in_new = _ids(spec.get("inputs"), n_in)
    rng = np.random.default_rng(seed)
    low, high = old.observation_space.low, old.observation_space.high
    finite = np.isfinite(low) & np.isfinite(high)
    x_old = rng.normal(size=(n, n_in)).astype(np.float32)
    x_old[:, finite] = rng.uniform(low[finite], high[finite], size=(n, int(finite.sum())))
    x_new = np.zeros((n, len(in_new)), np.float32)
    src = index_of(in_old, in_new)
    x_new[:, src >= 0] = x_old[:, src[src >= 0]]
    head = (spec.get("outputs") or {}).get("q" if kind == "dqn" else "action_net")
    act_old, act_new = _ids(head, _n_actions(old))
    cols = index_of(act_new, act_old)
    if (cols < 0).any():
        raise SurgeryError(f"old actions {[a for a, c in zip(act_old, cols) if c < 0]} are not in the new model")
    with torch.no_grad():
        a, b = torch.as_tensor(x_old, device=old.device), torch.as_tensor(x_new, device=new.device)
        if kind == "dqn":
            diffs = [np.abs(getattr(old.policy, net)(a).cpu().numpy()
                            - getattr(new.policy, net)(b).cpu().numpy()[:, cols]).max() for net in ("q_net", "q_net_target")]
            return float(max(diffs))
        va, vb = old.policy.predict_values(a).cpu().numpy(), new.policy.predict_values(b).cpu().numpy()
        da, db = old.policy.get_distribution(a), new.policy.get_distribution(b)
        from gymnasium import spaces

        if isinstance(old.action_space, spaces.Discrete):
            acts = torch.as_tensor(rng.integers(len(act_old), size=n))
            lp_a = da.log_prob(acts.to(old.device)).cpu().numpy()
            lp_b = db.log_prob(torch.as_tensor(cols[acts.numpy()]).to(new.device)).cpu().numpy()
        else:
            mean_a, std_a = da.distribution.mean.cpu().numpy(), da.distribution.stddev.cpu().numpy()
            mean_b, std_b = db.distribution.mean.cpu().numpy()[:, cols], db.distribution.stddev.cpu().numpy()[:, cols]
            return float(max(np.abs(va - vb).max(), np.abs(mean_a - mean_b).max(), np.abs(std_a - std_b).max()))
        return float(max(np.abs(va - vb).max(), np.abs(lp_a - lp_b).max()))


def _n_actions(model: Any) -> int:
    from gymnasium import spaces

    space = model.action_space
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))
