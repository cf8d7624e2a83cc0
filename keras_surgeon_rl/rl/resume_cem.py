"""Resume a keras-rl2 ``CEMAgent`` on a changed policy network: ``resume_cem(old_agent, spec)``.

A ``CEMAgent`` (cross-entropy method) learns no gradients. Its state is a Gaussian over the network's
*flattened* weights (``theta``: means, then standard deviations), the best parameters seen
(``best_seen = (reward, flat params)``) and an ``EpisodeParameterMemory`` holding, per episode, the
flat parameters it ran with and the episode's total reward. Surgery changes the length and order of
the flat vector, so every one of them goes through the same map (:class:`ParamMap`), computed once
from the surgery plan: each new entry is ``scale * old[src] + offset`` (a carried or copied entry)
or a fixed value (a new entry: zero input weights of new features, a new hidden unit's fresh
incoming weights, an inserted identity layer). Mapping a flat vector is what transplanting a
network holding it does (up to float32 rounding of a bias offset), except that a new hidden unit's
randomly drawn incoming weights are the resumed network's draw in every mapped vector, not a new
draw each (its outgoing weights are zero, so they do not change what the network computes).

How CEM acts, and which weights its model holds:

- ``select_action`` computes the model's outputs ``o`` and, in training, *samples* an action from
  ``softmax(o)``; at test time (``agent.test``) it takes ``argmax(o)``. So the network's last layer
  should be linear (logits); a softmax last layer is applied twice.
- During ``fit`` the model holds weights drawn from ``theta`` after each episode; when ``fit`` ends
  (``_on_train_end``) it is set to ``best_seen``'s parameters, and ``test`` uses those. (An agent
  whose ``fit`` never passed ``nb_steps_warmup`` then holds ``best_seen``'s initial zeros.)

The resumed agent's model is the old model's *current* weights transplanted (so after a ``fit``,
``best_seen`` mapped); ``theta``'s means, ``best_seen`` and every memory entry are mapped alike.

New actions (``spec["outputs"]``) start as ``"keep_greedy"``, as in
:func:`~keras_surgeon_rl.rl.resume_sarsa.resume_sarsa`: a copy of a kept action's head with its
bias lowered by the margin (1.0), so ``argmax`` — the action at test time — never changes. The
training-time softmax does change: the old actions' probabilities all shrink by one common factor
(their ratios are kept) and the new action gets ``p_src * e^-m / (1 + p_src * e^-m)``, at most
0.27 with the default margin ``m = 1``, where ``p_src`` is the copied action's old probability.
That is what lets CEM try the new action at all; ``{"keep_greedy": 10}`` keeps it below 4.6e-5.

``theta``'s standard deviations: a carried parameter (the same unit's weight, not a copy made for a
new unit) keeps its own (times ``|scale|`` of a Net2Net split); every new parameter (including a new
action's copied head) gets ``new_std``, by default the mean of the carried standard deviations (which
are all at least the agent's noise floor ``noise_ampl * exp(-noise_decay_const * step)``), or the
agent's ``init_stdev`` (1.0) when nothing is carried.

Example:
    >>> new_agent = resume_cem(agent, {"inputs": {"new": ["x", "x_dot", "theta", "theta_dot"]}})
    >>> new_agent.fit(env, nb_steps=10_000)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
from rl.agents.cem import CEMAgent
from rl.memory import EpisodeParameterMemory, Memory

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.adapters import adapter_for
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.planner import Plan
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.resume import _network_spec
from keras_surgeon_rl.spec import IdChange, NewUnitInit, Spec
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids
from keras_surgeon_rl.weights import Copy

logger = logging.getLogger(__name__)
tf_keras = setup()

#: CEMAgent settings carried from the old agent; each can be overridden by keyword.
SETTINGS = ("batch_size", "nb_steps_warmup", "train_interval", "elite_frac", "memory_interval",
            "noise_decay_const", "noise_ampl", "processor")


def cem_settings(agent: CEMAgent) -> dict:
    """The constructor settings of a ``CEMAgent`` (without model, memory and ``theta_init``)."""
    return {k: getattr(agent, k) for k in SETTINGS}


@dataclass
class ParamMap:
    """How a flat parameter vector of the old network becomes one of the new network.

    Attributes:
        src: per new entry, the old entry it comes from (``-1``: none, a new entry).
        scale: per new entry, the factor on ``old[src]`` (0 where ``src`` is -1).
        offset: per new entry, the value added (a lowered bias), or the whole value of a new entry.
        carried: per new entry, whether it is the *same* parameter as ``old[carried_src]`` (not a copy
            made for a new unit, such as a new action's ``keep_greedy`` head).
        carried_src: per new entry, the old entry it carries (``-1``: not carried).
        n_old: the old vector's length.
    """

    src: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    carried: np.ndarray
    carried_src: np.ndarray
    n_old: int

    @property
    def n_new(self) -> int:
        return int(self.src.size)

    def apply(self, flat: np.ndarray) -> np.ndarray:
        """Map one flat vector (shape ``(n_old,)``) or a stack of them (``(k, n_old)``).

        Returns:
            float64 array of shape ``(n_new,)`` or ``(k, n_new)``.

        Raises:
            SurgeryError: the vector's length is not ``n_old``.

        Example:
            >>> new_params = pmap.apply(old_params)
        """
        flat = np.asarray(flat, dtype=np.float64)
        if flat.shape[-1] != self.n_old:
            raise SurgeryError(f"a flat parameter vector of length {flat.shape[-1]} does not fit this map, made for "
                               f"the old network's {self.n_old} parameters")
        has = self.src >= 0
        out = np.broadcast_to(self.offset, flat.shape[:-1] + (self.n_new,)).copy()
        out[..., has] += self.scale[has] * flat[..., self.src[has]]
        return out

    def apply_std(self, std: np.ndarray, new_std: float) -> np.ndarray:
        """Map standard deviations: a carried entry keeps its own (times ``|scale|``), a new one gets ``new_std``.

        Example:
            >>> pmap.apply_std(theta[n:], new_std=0.1)
        """
        std = np.asarray(std, dtype=np.float64)
        out = np.full(self.n_new, float(new_std))
        c = self.carried
        out[c] = np.abs(self.scale[c]) * std[self.carried_src[c]]
        return out


def _flat_positions(model) -> tuple[dict, int]:
    """``{id(variable): (start, shape)}`` in ``model.get_weights()`` order, and the total size."""
    out, start = {}, 0
    for v in model.weights:
        shape = tuple(int(d) for d in v.shape)
        out[id(v)] = (start, shape)
        start += int(np.prod(shape, dtype=np.int64))
    return out, start


def _index_maps(p: Plan, old_model, new_model) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per new flat entry: old source index (-1: none), scale and offset, from the plan's maps.

    Every :class:`~keras_surgeon_rl.weights.Copy` map is affine per entry, so applying it (in float64)
    to zeros, ones and the old indices + 1 reads off offset, scale and source.
    """
    adapter = adapter_for(old_model)
    old_pos, n_old = _flat_positions(old_model)
    new_pos, n_new = _flat_positions(new_model)
    src = np.full(n_new, -1, dtype=np.int64)
    scale = np.zeros(n_new)
    offset = np.zeros(n_new)
    seen = np.zeros(n_new, dtype=bool)
    names = {layer.name for layer in new_model.layers}
    for lp in p.layers.values():
        if lp.sub is not None:
            raise SurgeryError(f"resume_cem: layer {lp.node.name!r} is a nested model; a CEMAgent's network must be a "
                               "flat Sequential or Functional model (rebuild it without nesting)")
        if lp.node.name not in names:
            continue  # a weightless operation, or a shared layer's later call
        old_slots = {}
        if lp.old is not None and lp.old.weights:
            o_names, o_vars = adapter.weight_slots(old_model.get_layer(lp.old.name))
            old_slots = {n: old_pos[id(v)] for n, v in zip(o_names, o_vars)}
        n_names, n_vars = adapter.weight_slots(new_model.get_layer(lp.node.name))
        for name, var in zip(n_names, n_vars):
            start, shape = new_pos[id(var)]
            part = slice(start, start + int(np.prod(shape, dtype=np.int64)))
            seen[part] = True
            m = lp.maps.get(name)
            if not (isinstance(m, Copy) and m.source in old_slots):
                continue  # generated or fresh: no old source
            o_start, o_shape = old_slots[m.source]
            o_size = int(np.prod(o_shape, dtype=np.int64))
            zeros = np.zeros(shape)
            t0 = m.apply(np.zeros(o_shape), zeros)
            a = m.apply(np.ones(o_shape), zeros) - t0
            ti = m.apply(np.arange(o_start + 1, o_start + 1 + o_size, dtype=np.float64).reshape(o_shape), zeros) - t0
            has = a != 0
            k = np.zeros(shape)
            k[has] = ti[has] / a[has] - 1
            idx = np.rint(k).astype(np.int64)
            if not np.allclose(k[has], idx[has], atol=1e-6):  # every entry comes from at most one old entry
                raise AssertionError(f"layer {lp.node.name!r}, weight {name!r}: a new entry mixes old entries")
            src[part] = np.where(has, idx, -1).ravel()
            scale[part] = np.where(has, a, 0.0).ravel()
            offset[part] = np.where(has, t0, 0.0).ravel()
    if not seen.all():
        raise AssertionError("resume_cem: the plan does not account for every weight of the new network")
    return src, scale, offset, n_old


def _carried_spec(net_spec: Spec) -> Spec:
    """The same surgery with every new unit starting from nothing: what is copied then is carried."""
    zeros = {"*": NewUnitInit("zeros")}
    outputs = {k: IdChange(v.old, v.new, v.axis, dict(zeros)) for k, v in net_spec.outputs.items()}
    return Spec(inputs=dict(net_spec.inputs), outputs=outputs, units=dict(net_spec.units),
                insert=list(net_spec.insert), delete=list(net_spec.delete),
                init="preserve" if net_spec.init == "net2net" else net_spec.init)


def param_map(old_model, new_model, p: Plan, carried_plan: Plan) -> ParamMap:
    """The :class:`ParamMap` of a surgery from its plan and the new network it built.

    Args:
        old_model: the network the plan was made for.
        new_model: the network ``surgeon.transplant_planned(old_model, p)`` built; its values fill
            the new entries (a new hidden unit's fresh incoming weights, zero input weights, ...).
        p: the plan.
        carried_plan: the plan of the same spec with every new unit's init ``"zeros"`` (and
            ``"preserve"`` for ``"net2net"``): what it copies is carried, not a copy for a new unit.

    Returns:
        The map; ``map.apply(flat(old weights))`` equals the flat new weights.

    Example:
        >>> pmap = param_map(old_model, new_model, plan, carried_plan)
    """
    src, scale, offset, n_old = _index_maps(p, old_model, new_model)
    csrc, _, _, _ = _index_maps(carried_plan, old_model, new_model)
    new_flat = np.concatenate([np.asarray(w, np.float64).ravel() for w in new_model.get_weights()] or [np.zeros(0)])
    offset = np.where(src >= 0, offset, new_flat)
    carried = csrc >= 0
    return ParamMap(src, scale, offset, carried, csrc, n_old)


def _new_memory(old: Memory, pmap: ParamMap, memory: Union[str, Memory]) -> Memory:
    if isinstance(memory, Memory):
        return memory
    new = EpisodeParameterMemory(old.limit, window_length=old.window_length,
                                 ignore_episode_boundaries=old.ignore_episode_boundaries)
    if memory == "fresh" or not len(old.params):
        return new
    mapped = pmap.apply(np.vstack([np.asarray(p, np.float64) for p in old.params]))
    new.params.extend(list(mapped))
    new.total_rewards.extend(list(old.total_rewards))
    new.intermediate_rewards = list(old.intermediate_rewards)
    return new


def resume_cem(old_agent: CEMAgent, spec: Any, *, memory: Union[str, Memory] = "carry",
               new_std: Optional[float] = None, **overrides) -> CEMAgent:
    """A new ``CEMAgent`` on the changed network, compiled and ready for ``fit``, with ``theta``,
    ``best_seen``, the episode memory and the episode counter carried through the surgery.

    Args:
        old_agent: a compiled keras-rl2 ``CEMAgent`` with an ``EpisodeParameterMemory``; never modified.
        spec: the surgery spec (see :mod:`keras_surgeon_rl.spec`); ``inputs`` holds the observation
            feature IDs, ``outputs`` the action IDs (new actions start as ``"keep_greedy"`` unless
            ``outputs.init`` says otherwise; see the module docstring for what that does to the
            training-time softmax). Old action IDs default to those the model carries, else
            ``0..nb_actions-1``.
        memory: ``"carry"`` (default: every entry's parameters mapped, rewards kept), ``"fresh"``
            (an empty ``EpisodeParameterMemory`` of the old one's settings) or a keras-rl2 memory.
            The memory's recent observations (for ``window_length > 1``) are not carried.
        new_std: ``theta``'s standard deviation for new parameters (default: the mean of the
            carried ones, or ``init_stdev`` when none is carried).
        **overrides: any of :data:`SETTINGS` to change (e.g. ``nb_steps_warmup=0``).

    Returns:
        The new agent: its model holds the old model's current weights transplanted and carries the
        unit IDs of features and actions; ``theta``, ``best_seen`` and the memory are mapped by one
        :class:`ParamMap` (kept as ``new_agent.param_map``, to map other flat vectors of the old
        network alike); ``episode`` and ``step`` are the old agent's.

    Raises:
        SurgeryError: not a compiled ``CEMAgent``, a bad ``memory`` or ``new_std``, or a bad spec,
            before anything is built.
        TypeError: an unknown setting in ``overrides``.

    Example:
        >>> new_agent = resume_cem(agent, {"inputs": {"new": ["x", "x_dot", "theta", "theta_dot"]},
        ...                                "outputs": {"new": ["left", "noop", "right"]}})
        >>> new_agent.fit(env, nb_steps=10_000)
    """
    if not isinstance(old_agent, CEMAgent):
        raise SurgeryError(f"resume_cem needs a CEMAgent, got a {type(old_agent).__name__}; use resume_agent")
    if not getattr(old_agent, "compiled", False):
        raise SurgeryError("resume_cem needs a compiled CEMAgent; call agent.compile() first")
    if not isinstance(old_agent.memory, EpisodeParameterMemory):
        raise SurgeryError(f"resume_cem needs a CEMAgent with an EpisodeParameterMemory, it has a "
                           f"{type(old_agent.memory).__name__}; build the agent with EpisodeParameterMemory")
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise TypeError(f"resume_cem got unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    if not isinstance(memory, Memory) and memory not in ("carry", "fresh"):
        raise SurgeryError(f"memory={memory!r}: use 'carry', 'fresh' or a keras-rl2 Memory")
    if new_std is not None and not (isinstance(new_std, (int, float)) and math.isfinite(new_std) and new_std >= 0):
        raise SurgeryError(f"new_std={new_std!r}: give a finite number >= 0 (theta's standard deviation for new "
                           "parameters), or None for the mean of the carried ones")
    settings = {**cem_settings(old_agent), **overrides}
    model = old_agent.model
    net_spec, old_actions, new_actions = _network_spec(old_agent, Spec.parse(spec), model)
    p = surgeon.plan(model, net_spec)  # refuses a bad spec before anything is built
    carried_plan = surgeon.plan(model, _carried_spec(net_spec))
    new_model = surgeon.transplant_planned(model, p)
    logger.info("resume_cem: network\n%s", new_model.surgery_report)

    pmap = param_map(model, new_model, p, carried_plan)
    n_old = old_agent.num_weights
    old_mean, old_std = old_agent.theta[:n_old], old_agent.theta[n_old:]
    if new_std is None:
        carried_std = old_std[pmap.carried_src[pmap.carried]]
        new_std = float(carried_std.mean()) if carried_std.size else float(old_agent.init_stdev)
    theta = np.hstack((pmap.apply(old_mean), pmap.apply_std(old_std, new_std)))
    logger.info("resume_cem: %d of %d parameters carried (theta's std kept), %d new (std %.4g)",
                int(pmap.carried.sum()), pmap.n_new, int((~pmap.carried).sum()), new_std)

    agent = CEMAgent(model=new_model, nb_actions=len(new_actions), memory=_new_memory(old_agent.memory, pmap, memory),
                     theta_init=theta, **settings)
    agent.compile()
    reward, params = old_agent.best_seen
    agent.best_seen = (reward, pmap.apply(params) if np.isfinite(reward) else np.zeros(agent.num_weights))
    agent.episode = old_agent.episode
    agent.step = old_agent.step
    agent.init_mean, agent.init_stdev = old_agent.init_mean, old_agent.init_stdev
    ids = get_unit_ids(new_model)
    set_unit_ids(agent.model, inputs=ids["inputs"], layers=ids["layers"], replace=True)
    agent.param_map = pmap
    return agent
