"""Resume a keras-rl2 ``DQNAgent`` on a changed network: ``resume_dqn(old_agent, spec)``.

The online and the target network go through :func:`keras_surgeon_rl.surgeon.transplant`; a new
``DQNAgent`` gets the old one's settings, ``nb_actions`` from the new output IDs, a fresh optimizer
of the old one's class and config (with ``optimizer_state="carry"``, holding the old optimizer's
state carried through the surgery), and the replay memory when it still fits.

Action IDs are the units of the Q-network's output: ``spec["outputs"] = {"old": [...], "new":
[...]}`` adds, removes or reorders actions. New actions start as ``"keep_greedy"`` unless the spec
says otherwise: a copy of a kept action's head with its bias lowered by a margin, so the greedy
action is unchanged on every input. Beware ``"zeros"`` with negative rewards: a new action whose Q
is 0 beats every learned (negative) Q-value, so the agent picks it almost always — the trap the
original weight-transplant experiments reported.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Optional, Union

import numpy as np
from rl.agents.dqn import DQNAgent
from rl.memory import Memory, SequentialMemory
from rl.policy import Policy
from rl.util import AdditionalUpdatesOptimizer

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.adapters import adapter_for
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.memory import carry_memory
from keras_surgeon_rl.rl.optimizer_state import inner_optimizer, map_optimizer_state, set_optimizer_state
from keras_surgeon_rl.rl.optimizer_state import optimizer_state as read_optimizer_state
from keras_surgeon_rl.spec import IdChange, Spec
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

VALUE_ID = "__value__"

#: DQNAgent settings carried from the old agent; each can be overridden by keyword.
SETTINGS = ("gamma", "batch_size", "nb_steps_warmup", "train_interval", "memory_interval",
            "target_model_update", "delta_clip", "enable_double_dqn", "enable_dueling_network",
            "dueling_type", "processor", "custom_model_objects")


def agent_settings(agent: DQNAgent) -> dict:
    """The constructor settings of a ``DQNAgent`` (without model, memory and policies)."""
    return {k: getattr(agent, k) for k in SETTINGS}


def clone_policy(policy: Policy) -> Policy:
    """A copy of a keras-rl2 policy with the same settings and no agent attached."""
    new = copy.copy(policy)
    new.__dict__ = {k: (clone_policy(v) if isinstance(v, Policy) else copy.copy(v))
                    for k, v in policy.__dict__.items() if k != "agent"}
    return new


def fresh_optimizer(agent: DQNAgent):
    """A new optimizer of the agent's optimizer class and config (its slot state is not kept)."""
    opt = agent.trainable_model.optimizer
    if isinstance(opt, AdditionalUpdatesOptimizer):  # soft target updates wrap the user's optimizer
        opt = opt.optimizer
    return type(opt).from_config(opt.get_config())


def network_of(agent: DQNAgent, target: bool = False):
    """The part of an agent's network that surgery works on, carrying the agent's unit IDs.

    For a plain agent, its model. For a dueling agent, the model up to the dueling head
    (``Dense(nb_actions + 1)``, whose units are ``[V, A(a1), A(a2), …]``), without keras-rl2's
    ``Lambda`` that combines them.
    """
    model = agent.target_model if target else agent.model
    if not agent.enable_dueling_network:
        if not target:
            return model
        # The target network is a clone with the same layer names; it carries the online model's
        # IDs through a view (without them its features would count 0..n-1 and fit no spec).
        view = tf_keras.Model(model.inputs, model.outputs, name=f"{model.name}_ids")
    else:
        view = tf_keras.Model(model.inputs, model.layers[-2].output, name=f"{model.name}_to_dueling_head")
    ids = get_unit_ids(agent.model)
    set_unit_ids(view, inputs=ids["inputs"], layers=ids["layers"])
    return view


def action_ids(agent: DQNAgent) -> list:
    """The agent's action IDs: those its model carries, else ``0..nb_actions-1``.

    Works for any agent with a Q-network ``model`` (``DQNAgent``, ``SARSAAgent``); only a
    ``DQNAgent`` can have a dueling head.
    """
    dueling = getattr(agent, "enable_dueling_network", False)
    head = agent.model.layers[-2 if dueling else -1].name
    carried = get_unit_ids(agent.model)["layers"].get(head)
    if carried is None:
        return list(range(agent.nb_actions))
    return [a for a in carried if a != VALUE_ID] if dueling else list(carried)


def _action_change(agent: DQNAgent, spec: Spec, network) -> tuple[str, IdChange]:
    """The output layer name and the action IDs (old and new) the spec asks for."""
    out_name = network.layers[-1].name
    given = dict(spec.outputs)
    if len(given) > 1:
        raise SurgeryError(f"a Q-network has one output; the spec names {sorted(map(str, given))}")
    change = next(iter(given.values())) if given else IdChange()
    old = change.old or action_ids(agent)
    if len(old) != agent.nb_actions:
        raise SurgeryError(f"outputs.old lists {len(old)} action IDs, but the agent has {agent.nb_actions} actions")
    new = change.new if change.new is not None else old
    init = change.new_unit_init or {"*": "keep_greedy"}
    return out_name, IdChange(list(old), list(new), None, {k: v for k, v in init.items()})


def _network_spec(agent: DQNAgent, spec: Spec, network) -> tuple[dict, list, list]:
    out_name, change = _action_change(agent, spec, network)
    old, new = change.old, change.new
    if getattr(agent, "enable_dueling_network", False):
        old, new = [VALUE_ID] + old, [VALUE_ID] + new
    from keras_surgeon_rl.spec import NewUnitInit

    init = {k: (v if isinstance(v, NewUnitInit) else NewUnitInit.parse(v, "outputs.init"))
            for k, v in change.new_unit_init.items()}
    kept = [a for a in change.new if a in change.old]
    for k, v in init.items():
        if v.kind == "keep_greedy":  # copy a kept *action* (for dueling heads, not the value unit)
            if not kept:
                raise SurgeryError("keep_greedy init copies a kept action, but the spec keeps none; "
                                   "give new actions 'random', 'zeros' or 'copy:<id>'")
            init[k] = NewUnitInit("keep_greedy", kept[0], v.bias_offset)  # still checked as keep_greedy
    net_spec = Spec(inputs=dict(spec.inputs), outputs={out_name: IdChange(old, new, None, init)},
                    units=dict(spec.units), insert=list(spec.insert), delete=list(spec.delete), init=spec.init)
    return net_spec, change.old, change.new


def _agent_model(network, dueling: bool, nb_actions: int):
    """The model to hand to ``DQNAgent``: for dueling, a stand-in last layer it will replace."""
    if not dueling:
        return network
    hidden = network.layers[-2].output
    stand_in = tf_keras.layers.Dense(nb_actions, name="replaced_by_dueling_head")(hidden)
    return tf_keras.Model(network.inputs, stand_in, name=network.name)


def _copy_into(agent_model, network, dueling: bool) -> None:
    """Weights of ``network`` into an agent model built from it (the dueling head by position)."""
    pairs = []
    for layer in network.layers:
        if not layer.weights:
            continue
        target = agent_model.layers[-2] if dueling and layer is network.layers[-1] else agent_model.get_layer(layer.name)
        pairs.append((target, layer))
    # one session run to read and one to write (graph mode), not two per layer
    values = iter(tf_keras.backend.batch_get_value([w for _, layer in pairs for w in layer.weights]))
    adapter_for(agent_model).set_many([(target, [next(values) for _ in layer.weights]) for target, layer in pairs])


def state_for_agent(state: dict, network, agent: DQNAgent) -> dict:
    """An optimizer state of ``network``'s weights, renamed for the agent built from it.

    keras-rl2 builds a dueling agent's head layer itself, under a name of its own: the state's
    entries for ``network``'s last layer move to that name. A plain agent's state is returned as it is.
    """
    if agent.enable_dueling_network:
        head, agent_head = network.layers[-1].name, agent.model.layers[-2].name
        for w in state["weights"]:
            if w["layer"] == head:
                w["layer"] = agent_head
    return state


def resume_dqn(old_agent: DQNAgent, spec: Any, *, memory: Union[str, Memory] = "auto",
               policy: Optional[Policy] = None, test_policy: Optional[Policy] = None, optimizer=None,
               metrics: Optional[list] = None, optimizer_state: str = "fresh", **overrides) -> DQNAgent:
    """A new ``DQNAgent`` on the changed network, compiled and ready for ``fit``.

    Args:
        old_agent: a compiled keras-rl2 ``DQNAgent`` (plain, double or dueling); never modified.
        spec: the surgery spec (see :mod:`keras_surgeon_rl.spec`); ``outputs`` holds the action IDs.
            For a model with ``window_length > 1`` (input ``(window, features)``) new features are
            added to every frame.
        memory: ``"auto"`` (carry the replay memory over when the observation shape is unchanged
            and no action is added, else start empty), ``"carry"`` (carry or fail), ``"fresh"``, or
            a keras-rl2 memory. Added actions start empty under ``"auto"`` because, measured on
            Acrobot and LunarLander (``docs/results.md``, "Retention"), a carried memory, which holds
            no transition with a new action, made the agent learn it more slowly.
            A spec that adds frames to the window (axis 1 of keras-rl2's ``(window, *obs)`` input)
            gives the new memory the new window length; stored frames are carried over.
            Carried actions are renumbered by ID; transitions of removed actions are never sampled.
        policy, test_policy: policies for the new agent (default: copies of the old ones).
        optimizer: optimizer for the new agent (default: a fresh one of the old one's class and
            config; its slot state, e.g. Adam's moments, starts anew unless ``optimizer_state``
            says otherwise).
        optimizer_state: ``"fresh"`` (default): the new agent's optimizer starts with no state, as
            a new optimizer does. ``"carry"``: the old optimizer's state (iteration count and
            slots, e.g. Adam's ``m`` and ``v``) goes through the same surgery as the weights
            (:func:`keras_surgeon_rl.rl.optimizer_state.map_optimizer_state`): kept entries are
            copied to their new positions, new ones (units, features, actions, inserted layers)
            start at zero. It needs an old agent that has trained (its optimizer has state), and
            an ``optimizer`` of the old one's class if one is given.
        metrics: metrics for ``compile`` (keras-rl2 always adds ``mean_q``).
        **overrides: any of :data:`SETTINGS` to change (e.g. ``nb_steps_warmup=0``).

    Returns:
        The new agent. Its model carries the unit IDs of features and actions.

    Example:
        >>> new_agent = resume_dqn(agent, {"inputs": {"old": ["x_dot", "theta"],
        ...                                           "new": ["x", "x_dot", "theta", "theta_dot"]}})
        >>> new_agent.fit(env, nb_steps=10_000)
    """
    if not getattr(old_agent, "compiled", False):
        raise SurgeryError("resume_dqn needs a compiled DQNAgent (it reads the optimizer and target network)")
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise TypeError(f"resume_dqn got unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    if not isinstance(memory, Memory) and memory not in ("auto", "carry", "fresh"):
        raise SurgeryError(f"memory={memory!r}: use 'auto', 'carry', 'fresh' or a keras-rl2 Memory")
    if optimizer_state not in ("fresh", "carry"):
        raise SurgeryError(f"optimizer_state={optimizer_state!r}: use 'fresh' (a new optimizer's empty state) or "
                           "'carry' (the old optimizer's state through the surgery)")
    old_state = None
    if optimizer_state == "carry":
        old_state = read_optimizer_state(old_agent)
        old_class = type(inner_optimizer(old_agent)).__name__
        if old_state is None:
            raise SurgeryError(f"optimizer_state='carry': the old agent's {old_class} has no state yet (it has never "
                               "trained); train it first (agent.fit past nb_steps_warmup), or use "
                               "optimizer_state='fresh'")
        if optimizer is not None and type(optimizer).__name__ != old_class:
            raise SurgeryError(f"optimizer_state='carry' carries the old {old_class}'s state, but optimizer= is a "
                               f"{type(optimizer).__name__}; pass a {old_class} (or no optimizer), or use "
                               "optimizer_state='fresh'")
    spec = Spec.parse(spec)
    settings = {**agent_settings(old_agent), **overrides}
    dueling = bool(settings["enable_dueling_network"])
    if dueling != old_agent.enable_dueling_network:
        raise SurgeryError("resume_dqn keeps the dueling setting of the old agent; build a new agent to change it")

    online = network_of(old_agent)
    net_spec, old_actions, new_actions = _network_spec(old_agent, spec, online)
    new_online = surgeon.transplant(online, net_spec)
    new_target = surgeon.transplant(network_of(old_agent, target=True), net_spec)
    logger.info("resume_dqn: online network\n%s", new_online.surgery_report)

    action_map = index_of(new_actions, old_actions)
    old_in, new_in = tuple(online.inputs[0].shape[1:]), tuple(new_online.inputs[0].shape[1:])
    window = old_agent.memory.window_length
    if old_in[:1] == (window,):  # keras-rl2's input is (window, *observation): a spec may add frames
        window = int(new_in[0])
        same_obs = new_in[1:] == old_in[1:]
    else:
        same_obs = new_in == old_in
    added = [a for a in new_actions if a not in old_actions]
    if isinstance(memory, str) and memory == "auto":
        memory = "carry" if same_obs and not added else "fresh"
        logger.info("resume_dqn: memory='auto' %s", "carries the replay memory over" if memory == "carry" else
                    "starts an empty replay memory: " + ("the observation shape changed" if not same_obs else
                                                         f"actions {added} are added (pass memory='carry' to keep it)"))
    if isinstance(memory, Memory):
        new_memory = memory
    elif memory == "fresh":
        new_memory = SequentialMemory(old_agent.memory.limit, window_length=window,
                                      ignore_episode_boundaries=old_agent.memory.ignore_episode_boundaries)
    else:  # "carry"
        if not same_obs:
            raise SurgeryError("memory='carry': the observation shape changed "
                               f"({old_in} → {new_in}), so stored observations no longer fit; use memory='fresh'")
        new_memory = carry_memory(old_agent.memory, action_map, window_length=window)

    model = _agent_model(new_online, dueling, len(new_actions))
    agent = DQNAgent(model=model, nb_actions=len(new_actions), memory=new_memory,
                     policy=policy or clone_policy(old_agent.policy),
                     test_policy=test_policy or clone_policy(old_agent.test_policy), **settings)
    _copy_into(agent.model, new_online, dueling)
    agent.compile(optimizer or fresh_optimizer(old_agent), metrics=list(metrics or []))
    _copy_into(agent.target_model, new_target, dueling)
    ids = get_unit_ids(new_online)
    if dueling:  # keras-rl2 built its own head layer, under another name
        ids["layers"][agent.model.layers[-2].name] = ids["layers"].pop(new_online.layers[-1].name)
    set_unit_ids(agent.model, inputs=ids["inputs"], layers=ids["layers"], replace=True)
    if old_state is not None:
        state = map_optimizer_state(old_state, online, new_online, net_spec)
        set_optimizer_state(agent, state_for_agent(state, new_online, agent))
    return agent
