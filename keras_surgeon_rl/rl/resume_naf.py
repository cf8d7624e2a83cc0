"""Resume a keras-rl2 ``NAFAgent`` on changed networks: ``resume_naf(old_agent, spec)``.

A ``NAFAgent`` owns three networks and a target: ``V_model`` (observation → V), ``mu_model``
(observation → μ, one unit per action), ``L_model`` (``[action, observation]`` → the entries of
the lower-triangular factor L) and a target copy of ``V_model``. Its Q-value is

    Q(s, a) = V(s) − ½ (a − μ(s))ᵀ P(s) (a − μ(s)),

with ``P = L Lᵀ`` in ``covariance_mode="full"`` and ``P = diag(entries)`` in ``"diag"``.

One spec describes the whole agent, as for :func:`~keras_surgeon_rl.rl.resume_ddpg.resume_ddpg`:
``spec["inputs"] = {"old": [...], "new": [...]}`` holds the observation feature IDs and reaches V's,
μ's and L's observation inputs; ``spec["outputs"]`` holds the action IDs and reaches μ's output
units, L's action input, and L's output entries. Hidden-layer edits go under ``spec["V"]``,
``spec["mu"]`` and ``spec["L"]``.

**L's entries are identified by action-ID pairs.** keras-rl2's ``NAFLayer`` fills L with
``tril_mask[np.tril_indices(n)] = 1..n(n+1)/2``, so entry ``k`` of L's output is the ``k``-th pair
of ``np.tril_indices(n)``: row-major over the lower triangle, ``(0,0), (1,0), (1,1), (2,0), (2,1),
(2,2), ...``; the diagonal entries (``k = i(i+3)/2``) go through ``exp(x) + epsilon``. Entry
``(i, j)`` has the unit ID ``(action_ids[i], action_ids[j])`` (:func:`l_entry_ids`). In ``"diag"``
mode entry ``i`` is P's diagonal element ``(i, i)`` itself (no exponential), with ID
``(action_ids[i], action_ids[i])``.

**What is exact.** A new action's μ unit starts at zero (kernel and bias; the neutral value ``0``)
and its L entries at zero: in ``"full"`` mode its off-diagonal entries are ``0`` and its diagonal
``exp(0) + ε``, so P becomes block-diagonal with the old P on the old actions, and Q for actions
whose new dimensions are ``0`` (= μ there) is the old Q. A removed action's dimension is held at the
old μ: ``Q_new(s, a_kept) = Q_old(s, a_kept, a_removed = μ_old,removed(s))``. That holds

- in ``"diag"`` mode for any addition, removal and permutation of actions;
- in ``"full"`` mode when the kept actions keep their relative order (new actions may go anywhere)
  and only actions after every kept one are removed. Otherwise the permuted factor is no longer
  lower-triangular (``Lᵀ``'s rows would have to be re-factorized), and :func:`resume_naf` refuses.

Removing an action also needs an L model that does not read its action input: keras-rl2 passes the
action to L, and an L that reads it (as keras-rl2's ``naf_pendulum`` example does) makes P depend on
the removed action's value, so removal is refused then. Adding actions is exact either way (the new
action-input features start with zero outgoing weights).

New observation features start with zero outgoing weights in all three networks (the library's
``"preserve"`` init), so V, μ and L do not depend on them yet.
"""

from __future__ import annotations

import logging
from typing import Any, Union

import numpy as np
from rl.agents.dqn import NAFAgent
from rl.memory import Memory

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.resume_ddpg import (_copy_weights, _inner, _one_change, _resolve, _view, check_memory,
                                             map_random_process, resumed_memory, split_spec)
from keras_surgeon_rl.spec import IdChange, NewUnitInit, Spec
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

#: NAFAgent settings carried from the old agent; each can be overridden by keyword.
SETTINGS = ("gamma", "batch_size", "nb_steps_warmup", "train_interval", "memory_interval", "target_model_update",
            "delta_clip", "custom_model_objects", "processor")
#: The network parts of a NAF spec (``spec["V"]``, ``spec["mu"]``, ``spec["L"]``).
NETWORKS = ("V", "mu", "L")
#: Activations with ``f(0) = 0``: a zero-initialized unit after them outputs exactly 0.
ZERO_AT_ZERO = ("linear", "tanh", "relu", "elu", "selu", "gelu", "swish", "silu", "softsign", "relu6", "leaky_relu",
                "mish")


def naf_settings(agent: NAFAgent) -> dict:
    """The constructor settings of a ``NAFAgent`` (without networks, memory, random process and
    ``covariance_mode``)."""
    return {k: getattr(agent, k) for k in SETTINGS}


def fresh_naf_optimizer(agent: NAFAgent):
    """A new optimizer of the class and config of the one the agent's combined model was compiled with."""
    o = _inner(agent.combined_model.optimizer)
    return type(o).from_config(o.get_config())


def l_entry_ids(action_ids: list, mode: str = "full") -> list:
    """The unit IDs of L's output entries, in the order keras-rl2's ``NAFLayer`` reads them.

    Args:
        action_ids: one ID per action, in the networks' order.
        mode: ``"full"`` (the lower triangle, row-major: ``np.tril_indices``) or ``"diag"``.

    Returns:
        A list of ``(row_id, column_id)`` tuples: ``n(n+1)/2`` of them in ``"full"`` mode, ``n`` in ``"diag"``.

    Example:
        >>> l_entry_ids(["a", "b"])
        [('a', 'a'), ('b', 'a'), ('b', 'b')]
    """
    n = len(action_ids)
    if mode == "diag":
        return [(a, a) for a in action_ids]
    rows, cols = np.tril_indices(n)
    return [(action_ids[i], action_ids[j]) for i, j in zip(rows, cols)]


def check_exact(old_actions: list, new_actions: list, mode: str) -> None:
    """Refuse an action edit that a ``"full"``-covariance NAF cannot take exactly.

    Args:
        old_actions, new_actions: the action IDs before and after.
        mode: the agent's ``covariance_mode``.

    Raises:
        SurgeryError: (``"full"`` mode) kept actions change their relative order, or an action is
            removed that comes before a kept one; the message names the fix.

    Example:
        >>> check_exact(["a", "b"], ["a", "c", "b"], "full")   # fine: an added action
        >>> check_exact(["a", "b"], ["b", "a"], "full")        # SurgeryError
    """
    if mode != "full":
        return
    kept_old = [a for a in old_actions if a in new_actions]
    kept_new = [a for a in new_actions if a in old_actions]
    fix = ("keep the kept actions in their old order (new actions may go anywhere) and remove only actions after the "
           "last kept one, or train an agent with covariance_mode='diag', where any edit is exact")
    if kept_old != kept_new:
        raise SurgeryError(f"spec['outputs']: the kept actions change their order ({kept_old} → {kept_new}); a NAF "
                           "agent with covariance_mode='full' cannot take that exactly, since the permuted Cholesky "
                           f"factor L is no longer lower-triangular. To resume: {fix}")
    if kept_old:
        last = old_actions.index(kept_old[-1])
        early = [a for a in old_actions[:last] if a not in new_actions]
        if early:
            raise SurgeryError(f"spec['outputs']: removes {early}, which come before the kept action {kept_old[-1]!r}; "
                               "with covariance_mode='full' the kept actions' P = L Lᵀ includes the removed rows' "
                               f"contributions, so the removal is not exact. To resume: {fix}")


def _output_chain(model) -> list:
    """``[unit layer, ..., output layer]``: the layer that holds ``model``'s output units and the weightless
    layers after it (e.g. the ``Activation`` keras-rl2's NAF example ends L with)."""
    chain = [model.layers[-1]]
    while not chain[0].weights and chain[0]._inbound_nodes:
        inbound = chain[0]._inbound_nodes[0].inbound_layers  # the model's own node (later ones: calls on new inputs)
        if isinstance(inbound, (list, tuple)) or inbound not in model.layers:
            break
        chain.insert(0, inbound)
    return chain


def _zero_at_zero(model) -> bool:
    """Whether a zero-initialized output unit of ``model`` (zero kernel and bias) outputs exactly 0: every
    activation from its unit-holding output layer to the output has ``f(0) = 0``."""
    for layer in _output_chain(model):
        activation = getattr(layer, "activation", None)
        if activation is None:
            return False
        name = tf_keras.activations.serialize(activation)
        name = name.get("config", {}).get("name", name.get("class_name")) if isinstance(name, dict) else name
        if name not in ZERO_AT_ZERO:
            return False
    return True


def naf_specs(agent: NAFAgent, spec: Any) -> tuple[dict, IdChange, IdChange]:
    """The V, μ and L network specs, and the observation and action ID changes.

    Args:
        agent: a compiled ``NAFAgent`` with one observation input.
        spec: the agent-level spec (see :func:`resume_naf`).

    Returns:
        ``({"V": spec, "mu": spec, "L": spec}, observations, actions)``.

    Raises:
        SurgeryError: before anything is built, naming the key at fault (or the inexact edit).
    """
    top, parts = split_spec(spec, NETWORKS, "NAF")
    V, mu, Lm = agent.V_model, agent.mu_model, agent.L_model
    if len(V.inputs) != 1 or len(mu.inputs) != 1 or len(Lm.inputs) != 2:
        raise SurgeryError(f"resume_naf supports V and mu models with one observation input and an L model with an "
                           f"action and an observation input; these have {len(V.inputs)}, {len(mu.inputs)} and "
                           f"{len(Lm.inputs)} inputs")
    mode = agent.covariance_mode
    n = agent.nb_actions
    n_obs = int(V.inputs[0].shape[-1])
    for model, shape in ((mu, mu.inputs[0].shape), (Lm, Lm.inputs[1].shape)):
        if int(shape[-1]) != n_obs:
            raise SurgeryError(f"{model.name!r} reads {shape[-1]} observation features, V {n_obs}; resume_naf needs all "
                               "three networks to read the same observation")
    obs = _resolve(_one_change(top.inputs, "inputs", "observation", "NAF"), get_unit_ids(V)["inputs"].get(
        V.input_names[0]), n_obs, "observation feature", "inputs")
    mu_out, l_out = mu.layers[-1].name, Lm.layers[-1].name  # the spec's output keys
    act = _resolve(_one_change(top.outputs, "outputs", "actions", "NAF"),
                   get_unit_ids(mu)["layers"].get(_output_chain(mu)[0].name),
                   n, "action", "outputs")
    check_exact(act.old, act.new, mode)
    removed = [a for a in act.old if a not in act.new]
    if removed and Lm.get_layer(Lm.input_names[0])._outbound_nodes:
        raise SurgeryError(f"spec['outputs']: removes the actions {removed}, but the L model reads its action input "
                           f"{Lm.input_names[0]!r} (as keras-rl2's naf_pendulum example does), so P(s, a) depends on "
                           "the removed actions' values and no new L gives the old Q. Remove actions only from an "
                           "agent whose L model reads the observation alone (L(s), as in the NAF paper), or keep the "
                           "actions")
    l_old, l_new = l_entry_ids(act.old, mode), l_entry_ids(act.new, mode)
    carried = get_unit_ids(Lm)["layers"].get(_output_chain(Lm)[0].name)
    if carried is not None and list(carried) != l_old:
        raise SurgeryError(f"the L model's output layer {l_out!r} carries the unit IDs {list(carried)[:6]}..., not the "
                           f"action-ID pairs {l_old[:6]}... of the actions {act.old}; give spec['outputs']['old'] "
                           "the action IDs the agent was trained with")
    added = [a for a in act.new if a not in act.old]
    mu_init = {k: (v if isinstance(v, NewUnitInit) else NewUnitInit.parse(v, "outputs.init"))
               for k, v in (act.new_unit_init or {"*": "zeros"}).items()}
    if added and not act.new_unit_init and not _zero_at_zero(mu):
        raise SurgeryError(f"the mu model's output layer {mu_out!r} has an activation with f(0) != 0, so a new "
                           f"action's zero-initialized mu unit would not start at the neutral value 0; use a linear "
                           "or tanh output, or give spec['outputs']['init'] for the new actions")
    if added and mode == "full" and not _zero_at_zero(Lm):
        raise SurgeryError(f"the L model's output layer {l_out!r} has an activation with f(0) != 0, so a new action's "
                           "off-diagonal L entries would not start at 0 and would couple it to the old actions; use a "
                           "linear L output, or an agent with covariance_mode='diag'")
    obs_in, l_action_in, l_obs_in = V.input_names[0], Lm.input_names[0], Lm.input_names[1]

    def network(part: str, inputs: dict, outputs: dict) -> Spec:
        p = parts[part]
        return Spec(inputs=inputs, outputs=outputs, units=p.units, insert=p.insert, delete=p.delete, init=p.init)

    specs = {
        "V": network("V", {obs_in: IdChange(obs.old, obs.new, obs.axis)}, {}),
        "mu": network("mu", {mu.input_names[0]: IdChange(obs.old, obs.new, obs.axis)},
                      {mu_out: IdChange(act.old, act.new, None, mu_init)}),
        "L": network("L", {l_obs_in: IdChange(obs.old, obs.new, obs.axis), l_action_in: IdChange(act.old, act.new)},
                     {l_out: IdChange(l_old, l_new, None, {"*": NewUnitInit.parse("zeros", "L entries")})}),
    }
    return specs, obs, act


def resume_naf(old_agent: NAFAgent, spec: Any, *, memory: Union[str, Memory] = "auto", random_process=None,
               optimizer=None, **overrides) -> NAFAgent:
    """A new ``NAFAgent`` on the changed V, μ and L networks, compiled and ready for ``fit``.

    New action dimensions start at the neutral value ``0`` (μ's new unit: zero kernel and bias) with
    zero L entries (off-diagonal ``0``; in ``"full"`` mode the diagonal ``exp(0) + ε``), so Q for
    actions whose new dimensions are ``0`` equals the old Q, and μ on the old actions is unchanged.
    A removed action is held at the old μ (see the module docstring for what is exact). New
    observation features start with zero outgoing weights in all three networks.

    Args:
        old_agent: a compiled keras-rl2 ``NAFAgent`` with one observation input; never modified.
        spec: ``{"inputs": {"old": [...], "new": [...]}}`` (observation feature IDs),
            ``"outputs"`` likewise (action IDs; ``"init"`` may override the zero init of new μ units),
            ``"init"`` (new hidden units), and ``"V"`` / ``"mu"`` / ``"L"``: ``{"units", "insert",
            "delete", "init"}`` for that network's hidden layers. Old IDs default to those the
            networks carry, else ``0..n-1``. L's output entries are mapped by action-ID pairs
            (:func:`l_entry_ids`); they are not given in the spec.
        memory: ``"auto"``, ``"carry"``, ``"fresh"`` or a keras-rl2 memory, as for
            :func:`~keras_surgeon_rl.rl.resume_ddpg.resume_ddpg` (carried action columns are
            mapped by ID, new ones ``0``).
        random_process: the new agent's exploration noise (default: a copy of the old one's with
            ``size`` the new action count and its state mapped by action ID, new dimensions at 0).
        optimizer: the new agent's optimizer (default: a fresh one of the old one's class and config).
        **overrides: any of :data:`SETTINGS` to change (e.g. ``nb_steps_warmup=0``).

    Returns:
        The new agent (same ``covariance_mode``). Its V, μ and L models carry the unit IDs of
        features, actions and L entries.

    Raises:
        SurgeryError: a bad spec or memory setting, or an action edit that is not exact in
            ``"full"`` mode (reordered kept actions, removed actions before a kept one) or with an
            L model that reads its action input (removed actions), before
            anything is built.
        TypeError: an unknown setting in ``overrides``.

    Example:
        >>> new_agent = resume_naf(agent, {"outputs": {"old": ["main"], "new": ["main", "lateral"]},
        ...                                "L": {"units": {"l_h": 64}}})
        >>> new_agent.fit(env, nb_steps=10_000)
    """
    if not isinstance(old_agent, NAFAgent):
        raise SurgeryError(f"resume_naf needs a NAFAgent, got a {type(old_agent).__name__}; use resume_agent")
    if not getattr(old_agent, "compiled", False):
        raise SurgeryError("resume_naf needs a compiled NAFAgent (it reads the optimizer and the target V model); "
                           "call agent.compile first")
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise TypeError(f"resume_naf got unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    if not isinstance(memory, Memory) and memory not in ("auto", "carry", "fresh"):
        raise SurgeryError(f"memory={memory!r}: use 'auto', 'carry', 'fresh' or a keras-rl2 Memory")
    specs, obs, act = naf_specs(old_agent, spec)
    check_memory(old_agent, memory, obs)
    new_process = random_process if random_process is not None else \
        map_random_process(old_agent.random_process, act.old, act.new)
    settings = {**naf_settings(old_agent), **overrides}

    # plan all four networks first: a spec that fits one and not another fails before anything is built
    sources = (old_agent.V_model, old_agent.mu_model, old_agent.L_model,
               _view(old_agent.target_V_model, old_agent.V_model))
    plans = [surgeon.plan(m, specs[k]) for m, k in zip(sources, ("V", "mu", "L", "V"))]
    new_V, new_mu, new_L, new_target_V = (surgeon.transplant_planned(m, p) for m, p in zip(sources, plans))
    for name, net in (("V", new_V), ("mu", new_mu), ("L", new_L)):
        logger.info("resume_naf: %s\n%s", name, net.surgery_report)

    new_memory = resumed_memory(old_agent, memory, obs, act)
    state = getattr(new_process, "x_prev", None)
    agent = NAFAgent(nb_actions=len(act.new), V_model=new_V, L_model=new_L, mu_model=new_mu, memory=new_memory,
                     random_process=new_process, covariance_mode=old_agent.covariance_mode, **settings)
    if state is not None:  # NAFAgent.__init__ resets the process (a new random x_prev): put the mapped state back
        new_process.x_prev = state
    agent.compile(optimizer or fresh_naf_optimizer(old_agent), metrics=[])
    _copy_weights(new_target_V, agent.target_V_model)
    return agent
