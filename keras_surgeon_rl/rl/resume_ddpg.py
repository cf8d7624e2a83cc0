"""Resume a keras-rl2 ``DDPGAgent`` on changed networks: ``resume_ddpg(old_agent, spec)``.

One spec describes the whole agent. ``spec["inputs"] = {"old": [...], "new": [...]}`` holds the
observation feature IDs and reaches every network that reads observations (the actor's input and
the critic's observation input); ``spec["outputs"] = {"old": [...], "new": [...]}`` holds the
action IDs and reaches the actor's output units and the critic's action input. Hidden-layer edits
go under ``spec["actor"]`` and ``spec["critic"]`` (``units``, ``insert``, ``delete``, ``init``).

The online actor and critic, and the target actor and critic, each go through
:func:`keras_surgeon_rl.surgeon.transplant` with their network's spec (the targets from the old
targets, not copied from the online networks). A new ``DDPGAgent`` gets the old one's settings, a
copy of its random process with the state mapped by action ID, fresh optimizers of the old ones'
classes and configs, and the replay memory when the observation shape is unchanged, its stored
action vectors' columns mapped by action ID.

Function preservation with continuous actions: the **neutral value** of a new action dimension is
``0``. A new actor output unit starts with zero kernel and zero bias, so it outputs
``activation(0)`` (``0`` for ``tanh`` or a linear output); the critic's new action-input feature
starts with zero outgoing weights, so Q is unchanged for the old actions whatever the new
dimension's value. New observation features start with zero outgoing weights in both networks (the
library's ``"preserve"`` init), so the actor's actions and the critic's Q do not depend on them yet.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Optional, Union

import numpy as np
from rl.agents.ddpg import DDPGAgent
from rl.memory import Memory, SequentialMemory
from rl.util import AdditionalUpdatesOptimizer

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.memory import carry_action_columns
from keras_surgeon_rl.spec import IdChange, NewUnitInit, Spec, suggest
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

#: DDPGAgent settings carried from the old agent; each can be overridden by keyword.
SETTINGS = ("gamma", "batch_size", "nb_steps_warmup_critic", "nb_steps_warmup_actor", "train_interval",
            "memory_interval", "delta_clip", "target_model_update", "custom_model_objects", "processor")
#: Keys of a DDPG spec's per-network part (``spec["actor"]``, ``spec["critic"]``).
NETWORK_KEYS = ("units", "insert", "delete", "init")
NETWORKS = ("actor", "critic")
AGENT_KEYS = ("inputs", "outputs", "init") + NETWORKS


def ddpg_settings(agent: DDPGAgent) -> dict:
    """The constructor settings of a ``DDPGAgent`` (without networks, memory and random process)."""
    return {k: getattr(agent, k) for k in SETTINGS}


def _inner(opt):
    """The user's optimizer inside keras-rl2's soft-update wrapper (or ``opt`` itself)."""
    return opt.optimizer if isinstance(opt, AdditionalUpdatesOptimizer) else opt


def fresh_ddpg_optimizers(agent: DDPGAgent) -> list:
    """``[actor_optimizer, critic_optimizer]``: new optimizers of the old ones' classes and configs."""
    return [type(o).from_config(o.get_config())
            for o in (_inner(agent.actor_optimizer), _inner(agent.critic.optimizer))]


def _view(model, ids_from):
    """``model`` as a new Model over the same tensors, carrying ``ids_from``'s unit IDs.

    keras-rl2's target networks are clones without IDs; the view lends them the online network's
    IDs without touching the target itself.
    """
    view = tf_keras.Model(model.inputs, model.outputs, name=f"{model.name}_ids")
    ids = get_unit_ids(ids_from)
    set_unit_ids(view, inputs=ids["inputs"], layers=ids["layers"])
    return view


def _one_change(value: dict, key: str, model_name: str, agent: str = "DDPG") -> IdChange:
    """The single ID change of ``spec[key]`` (the shorthand, or one entry under a name)."""
    changes = dict(value)
    if len(changes) > 1:
        raise SurgeryError(f"spec[{key!r}] of a {agent} agent is one ID change ({{'old': [...], 'new': [...]}}) for the "
                           f"{model_name}; it names {sorted(map(str, changes))}")
    return next(iter(changes.values())) if changes else IdChange()


def _resolve(change: IdChange, carried: Optional[list], count: int, what: str, key: str) -> IdChange:
    old = change.old or carried or list(range(count))
    if len(old) != count:
        raise SurgeryError(f"spec[{key!r}]['old'] lists {len(old)} {what} IDs, but the agent has {count} {what}s; "
                           f"give one ID per {what}, in the order the networks see them")
    new = change.new if change.new is not None else list(old)
    if not new:
        raise SurgeryError(f"spec[{key!r}]['new'] is empty; the agent needs at least one {what}")
    return IdChange(list(old), list(new), change.axis, dict(change.new_unit_init))


def split_spec(spec: Any, networks: tuple = NETWORKS, agent: str = "DDPG") -> tuple[Spec, dict]:
    """The agent-level spec (inputs, outputs, init) and the per-network parts, validated.

    Args:
        spec: the agent-level spec dict (or ``None``).
        networks: the names of the agent's network parts (``("actor", "critic")`` for DDPG).
        agent: the agent's name in messages.

    Returns:
        ``(agent_level, parts)``: the parsed ``inputs``/``outputs``/``init`` and ``{network: Spec}``.

    Raises:
        SurgeryError: an unknown key, hidden-layer edits at the top level, or a bad network part.
    """
    if spec is None:
        spec = {}
    if isinstance(spec, Spec):
        raise SurgeryError(f"resume_{agent.lower()} takes a spec dict (with {' and '.join(map(repr, networks))} "
                           "parts), not a parsed Spec")
    if not isinstance(spec, dict):
        raise SurgeryError(f"the spec must be a dict, got {type(spec).__name__}")
    agent_keys = ("inputs", "outputs", "init") + tuple(networks)
    for key in spec:
        if key in NETWORK_KEYS[:3]:
            where = " or ".join(f"spec[{n!r}][{key!r}]" for n in networks)
            raise SurgeryError(f"spec[{key!r}]: a {agent} agent has {len(networks)} networks; put hidden-layer edits "
                               f"under {where}")
        if key not in agent_keys:
            raise SurgeryError(f"unknown key {key!r} in a {agent} spec; known keys: {', '.join(agent_keys)}."
                               + suggest(key, agent_keys))
    parts = {}
    for net in networks:
        part = spec.get(net) or {}
        if not isinstance(part, dict):
            raise SurgeryError(f"spec[{net!r}] must be a dict of {', '.join(NETWORK_KEYS)}, got {type(part).__name__}")
        for key in part:
            if key not in NETWORK_KEYS:
                raise SurgeryError(f"unknown key {key!r} in spec[{net!r}]; known: {', '.join(NETWORK_KEYS)} "
                                   "(observation and action IDs go in the agent-level 'inputs' and 'outputs')."
                                   + suggest(key, NETWORK_KEYS))
        part = dict(part)
        if "init" in spec and "init" not in part:
            part["init"] = spec["init"]
        parts[net] = Spec.parse(part)
    agent_level = Spec.parse({k: spec[k] for k in ("inputs", "outputs", "init") if k in spec})
    return agent_level, parts


def ddpg_specs(agent: DDPGAgent, spec: Any) -> tuple[Spec, Spec, IdChange, IdChange]:
    """The actor's and the critic's network specs, and the observation and action ID changes.

    Args:
        agent: a compiled ``DDPGAgent``.
        spec: the agent-level spec (see :func:`resume_ddpg`).

    Returns:
        ``(actor_spec, critic_spec, observations, actions)``.

    Raises:
        SurgeryError: before anything is built, naming the key at fault.
    """
    top, parts = split_spec(spec)
    actor, critic = agent.actor, agent.critic
    if len(actor.inputs) != 1 or len(critic.inputs) != 2:
        raise SurgeryError(f"resume_ddpg supports an actor with one observation input and a critic with an action and "
                           f"an observation input; this actor has {len(actor.inputs)} inputs and this critic "
                           f"{len(critic.inputs)}")
    action_idx = agent.critic_action_input_idx
    action_in = critic.input_names[action_idx]
    obs_in = critic.input_names[1 - action_idx]
    actor_in, actor_out = actor.input_names[0], actor.layers[-1].name
    n_obs = int(actor.inputs[0].shape[-1])
    if int(critic.inputs[1 - action_idx].shape[-1]) != n_obs:
        raise SurgeryError(f"the critic's observation input {obs_in!r} has {critic.inputs[1 - action_idx].shape[-1]} "
                           f"features, the actor's {actor_in!r} {n_obs}; resume_ddpg needs both to read the same "
                           "observation")
    obs = _resolve(_one_change(top.inputs, "inputs", "observation"), get_unit_ids(actor)["inputs"].get(actor_in),
                   n_obs, "observation feature", "inputs")
    act = _resolve(_one_change(top.outputs, "outputs", "actions"), get_unit_ids(actor)["layers"].get(actor_out),
                   agent.nb_actions, "action", "outputs")
    actor_init = {k: (v if isinstance(v, NewUnitInit) else NewUnitInit.parse(v, "outputs.init"))
                  for k, v in (act.new_unit_init or {"*": "zeros"}).items()}
    actor_spec = Spec(inputs={actor_in: IdChange(obs.old, obs.new, obs.axis)},
                      outputs={actor_out: IdChange(act.old, act.new, None, actor_init)},
                      units=parts["actor"].units, insert=parts["actor"].insert, delete=parts["actor"].delete,
                      init=parts["actor"].init)
    critic_spec = Spec(inputs={obs_in: IdChange(obs.old, obs.new, obs.axis), action_in: IdChange(act.old, act.new)},
                       units=parts["critic"].units, insert=parts["critic"].insert, delete=parts["critic"].delete,
                       init=parts["critic"].init)
    return actor_spec, critic_spec, obs, act


def map_random_process(process, old_actions: list, new_actions: list):
    """A copy of ``process`` for the new actions: ``size`` is the new action count, and its
    per-dimension state ``x_prev`` (Ornstein-Uhlenbeck) is mapped by action ID, new dimensions at 0.

    Args:
        process: a keras-rl2 random process (or ``None``); never modified.
        old_actions, new_actions: the action IDs before and after.

    Returns:
        The new process, or ``None``.

    Raises:
        SurgeryError: the process holds another per-dimension array (e.g. ``sigma`` per action),
            which this function cannot extend; pass ``random_process=`` instead.

    Example:
        >>> new = map_random_process(OrnsteinUhlenbeckProcess(theta=.15, size=2), ["a", "b"], ["b", "c", "a"])
    """
    if process is None:
        return None
    new = copy.deepcopy(process)
    n_old, n_new = len(old_actions), len(new_actions)
    columns = index_of(old_actions, new_actions)  # for each new action, its old index (-1: new)
    for name, value in vars(process).items():
        if name == "x_prev" or not (isinstance(value, np.ndarray) and value.shape[:1] == (n_old,) and n_old > 1):
            continue
        raise SurgeryError(f"the random process {type(process).__name__} holds a per-action {name!r} of shape "
                           f"{value.shape}; resume_ddpg maps only x_prev. Pass random_process= for the new actions")
    if hasattr(process, "size"):
        new.size = n_new
    x_prev = getattr(process, "x_prev", None)
    if x_prev is not None:
        x_prev = np.asarray(x_prev)
        mapped = np.zeros((n_new,) + x_prev.shape[1:], x_prev.dtype)
        kept = columns >= 0
        mapped[kept] = x_prev[columns[kept]]
        new.x_prev = mapped
    return new


def check_memory(old_agent, memory: Union[str, Memory], obs: IdChange) -> None:
    """Refuse ``memory="carry"`` when the old agent's replay memory cannot be carried over.

    Args:
        old_agent: the old agent (with a ``memory``).
        memory: the ``memory=`` argument of the resume function.
        obs: the observation feature ID change.

    Raises:
        SurgeryError: ``"carry"`` with changed observation features, or with a memory other than a
            ``SequentialMemory``.

    Example:
        >>> check_memory(agent, "carry", IdChange(["a"], ["a", "b"]))  # raises: observations change
    """
    if not (isinstance(memory, str) and memory == "carry"):
        return
    if obs.new != obs.old:
        raise SurgeryError(f"memory='carry': the observation features change ({obs.old} → {obs.new}), so stored "
                           "observations no longer fit; use memory='fresh'")
    if not isinstance(old_agent.memory, SequentialMemory):
        raise SurgeryError(f"memory='carry' carries a SequentialMemory; the old agent has a "
                           f"{type(old_agent.memory).__name__}. Use memory='fresh' or pass a keras-rl2 Memory")


def resumed_memory(old_agent, memory: Union[str, Memory], obs: IdChange, act: IdChange) -> Memory:
    """The new agent's replay memory (``memory=`` already checked by :func:`check_memory`).

    Args:
        old_agent: the old agent; its memory is never modified.
        memory: ``"auto"``, ``"carry"``, ``"fresh"`` or a keras-rl2 ``Memory`` (returned as it is).
        obs, act: the observation feature and action ID changes.

    Returns:
        A carried ``SequentialMemory`` (action columns mapped by ID, see
        :func:`~keras_surgeon_rl.rl.memory.carry_action_columns`) when the observation features are
        unchanged and the old memory is a ``SequentialMemory`` (and not ``"fresh"``), else an empty one
        with the old limit, window and episode-boundary setting.

    Example:
        >>> new_memory = resumed_memory(agent, "auto", obs, act)
    """
    if isinstance(memory, Memory):
        return memory
    same_obs = obs.new == obs.old
    sequential = isinstance(old_agent.memory, SequentialMemory)
    if memory == "fresh" or not same_obs or not sequential:
        if memory == "auto":
            logger.info("memory='auto' starts an empty replay memory: %s",
                        "the observation features change" if not same_obs else
                        f"the old {type(old_agent.memory).__name__} is not a SequentialMemory")
        return SequentialMemory(old_agent.memory.limit, window_length=old_agent.memory.window_length,
                                ignore_episode_boundaries=old_agent.memory.ignore_episode_boundaries)
    return carry_action_columns(old_agent.memory, act.old, act.new)


def _copy_weights(source, target) -> None:
    """Weights of every layer of ``source`` into the layer of the same name in ``target``."""
    pairs = [(target.get_layer(layer.name), layer) for layer in source.layers if layer.weights]
    values = iter(tf_keras.backend.batch_get_value([w for _, layer in pairs for w in layer.weights]))
    tf_keras.backend.batch_set_value([(w, next(values)) for t, layer in pairs for w in t.weights])


def resume_ddpg(old_agent: DDPGAgent, spec: Any, *, memory: Union[str, Memory] = "auto", random_process=None,
                actor_optimizer=None, critic_optimizer=None, **overrides) -> DDPGAgent:
    """A new ``DDPGAgent`` on the changed actor and critic, compiled and ready for ``fit``.

    New action dimensions start at the neutral value ``0``: the actor's new output unit has zero
    kernel and zero bias (``tanh(0) = 0``), the critic's new action feature zero outgoing weights
    (Q for the old actions is unchanged whatever the new dimension holds). New observation features
    start with zero outgoing weights in both networks. So the new actor's actions on the old action
    IDs, and the critic's Q, equal the old ones on every state (within float rounding).

    Args:
        old_agent: a compiled keras-rl2 ``DDPGAgent`` whose critic has one action input
            (``critic_action_input``) and one observation input; never modified.
        spec: ``{"inputs": {"old": [...], "new": [...]}}`` (observation feature IDs),
            ``"outputs"`` likewise (action IDs; ``"init"`` may override the zero init of new
            actor outputs), ``"init"`` (new hidden units, as in the spec), and ``"actor"`` /
            ``"critic"``: ``{"units", "insert", "delete", "init"}`` for that network's hidden
            layers. Old IDs default to those the actor carries, else ``0..n-1``.
        memory: ``"auto"`` (carry a ``SequentialMemory`` when the observation features are unchanged, its
            action columns mapped by ID, new columns ``0``, removed ones dropped; else start empty),
            ``"carry"`` (carry or fail), ``"fresh"``, or a keras-rl2 memory.
        random_process: the new agent's exploration noise (default: a copy of the old one's with
            ``size`` the new action count and ``x_prev`` mapped by action ID, new dimensions at 0;
            keras-rl2 resets the process at each episode start, so the mapped state lasts until
            the next ``fit`` or episode begins).
        actor_optimizer, critic_optimizer: optimizers for the new agent (default: fresh ones of the
            old ones' classes and configs; their slot state starts anew).
        **overrides: any of :data:`SETTINGS` to change (e.g. ``nb_steps_warmup_actor=0``).

    Returns:
        The new agent. Its actor and critic carry the unit IDs of features and actions.

    Raises:
        SurgeryError: a bad spec or memory setting, before anything is built.

    Example:
        >>> new_agent = resume_ddpg(agent, {"inputs": {"old": ["cos_theta", "sin_theta"],
        ...                                            "new": ["cos_theta", "sin_theta", "theta_dot"]},
        ...                                 "critic": {"units": {"hidden": 64}}})
        >>> new_agent.fit(env, nb_steps=10_000)
    """
    if not isinstance(old_agent, DDPGAgent):
        raise SurgeryError(f"resume_ddpg needs a DDPGAgent, got a {type(old_agent).__name__}; use resume_agent")
    if not getattr(old_agent, "compiled", False):
        raise SurgeryError("resume_ddpg needs a compiled DDPGAgent (it reads the optimizers and target networks); "
                           "call agent.compile first")
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise TypeError(f"resume_ddpg got unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    if not isinstance(memory, Memory) and memory not in ("auto", "carry", "fresh"):
        raise SurgeryError(f"memory={memory!r}: use 'auto', 'carry', 'fresh' or a keras-rl2 Memory")
    actor_spec, critic_spec, obs, act = ddpg_specs(old_agent, spec)
    check_memory(old_agent, memory, obs)
    new_process = random_process if random_process is not None else \
        map_random_process(old_agent.random_process, act.old, act.new)
    settings = {**ddpg_settings(old_agent), **overrides}

    # plan all four networks first: a spec that fits one and not another fails before anything is built
    sources = (old_agent.actor, old_agent.critic, _view(old_agent.target_actor, old_agent.actor),
               _view(old_agent.target_critic, old_agent.critic))
    plans = [surgeon.plan(m, s) for m, s in zip(sources, (actor_spec, critic_spec) * 2)]
    new_actor, new_critic, new_target_actor, new_target_critic = (
        surgeon.transplant_planned(m, p) for m, p in zip(sources, plans))
    logger.info("resume_ddpg: actor\n%s", new_actor.surgery_report)
    logger.info("resume_ddpg: critic\n%s", new_critic.surgery_report)

    new_memory = resumed_memory(old_agent, memory, obs, act)
    action_name = old_agent.critic.input_names[old_agent.critic_action_input_idx]
    action_input = new_critic.inputs[new_critic.input_names.index(action_name)]
    state = getattr(new_process, "x_prev", None)
    agent = DDPGAgent(nb_actions=len(act.new), actor=new_actor, critic=new_critic, critic_action_input=action_input,
                      memory=new_memory, random_process=new_process, **settings)
    if state is not None:  # DDPGAgent.__init__ resets the process (a new random x_prev): put the mapped state back
        new_process.x_prev = state
    fresh = fresh_ddpg_optimizers(old_agent)
    agent.compile([actor_optimizer or fresh[0], critic_optimizer or fresh[1]], metrics=[])
    _copy_weights(new_target_actor, agent.target_actor)
    _copy_weights(new_target_critic, agent.target_critic)
    for net, new in ((agent.actor, new_actor), (agent.critic, new_critic)):
        ids = get_unit_ids(new)
        set_unit_ids(net, inputs=ids["inputs"], layers=ids["layers"], replace=True)
    return agent
