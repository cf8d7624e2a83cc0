"""The state of a keras-rl2 ``DQNAgent``'s optimizer: read it, write it, carry it through surgery.

An optimizer's state is its iteration count and, per trainable weight, its *slots* (Adam's first
and second moments ``m`` and ``v``, RMSprop's ``rms``, SGD's ``momentum``…). keras-rl2 wraps the
user's optimizer in an ``AdditionalUpdatesOptimizer`` when ``target_model_update < 1``; the state
is the inner (user's) optimizer's. tf_keras's legacy optimizers create their slots lazily, when
the training function is built (the first ``train_on_batch``); :func:`set_optimizer_state`
creates them up front and writes their values, so the agent's next training step goes on from
the given state.

A state is a plain dict (see :func:`optimizer_state`), keyed by layer and weight name, so it can
be saved (:func:`keras_surgeon_rl.rl.persist.save_agent` with ``optimizer=True``) and carried
through the surgery that changes the network (:func:`map_optimizer_state`): entries of kept units
are copied to their new positions, and every new entry (new units, input features, actions,
inserted layers) starts at zero, as a fresh Adam, RMSprop or SGD-with-momentum starts. (Adagrad
and Ftrl start their accumulators at ``initial_accumulator_value``, not zero; carried into them, new
entries still start at zero.)

Example:
    >>> state = optimizer_state(agent)                  # None before the first training step
    >>> new_state = map_optimizer_state(state, network_of(agent), new_network, spec)
    >>> set_optimizer_state(new_agent, new_state)
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
from rl.util import AdditionalUpdatesOptimizer

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.adapters import adapter_for
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.slots import map_slot, plan_maps
from keras_surgeon_rl.weights import Copy

logger = logging.getLogger(__name__)
tf_keras = setup()


def inner_optimizer(agent):
    """The optimizer the agent was compiled with (inside keras-rl2's ``AdditionalUpdatesOptimizer``)."""
    if not getattr(agent, "compiled", False):
        raise SurgeryError("the agent is not compiled, so it has no optimizer; call agent.compile(optimizer) first")
    opt = agent.trainable_model.optimizer
    opt = opt.optimizer if isinstance(opt, AdditionalUpdatesOptimizer) else opt
    if not isinstance(opt, tf_keras.optimizers.legacy.Optimizer):
        raise ValueError(f"the agent's optimizer is a {type(opt).__module__}.{type(opt).__name__}; its state can be "
                         "read and written for tf_keras.optimizers.legacy optimizers (what keras-rl2 trains with in "
                         "graph mode): compile the agent with one")
    return opt


def _named_weights(model) -> list[tuple[str, str, Any]]:
    """``(layer name, weight name, variable)`` per trainable weight of ``model``, nested models included.

    Weight names are the surgeon's (:meth:`KerasAdapter.get_weights`): ``"kernel"``, ``"bias"``…
    """
    adapter = adapter_for(model)
    out = []
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            out += _named_weights(layer)
            continue
        if not layer.weights:
            continue
        trainable = {id(v) for v in layer.trainable_weights}
        names = [n for n, _ in adapter.get_weights(layer)]
        out += [(layer.name, n, v) for n, v in zip(names, layer.weights) if id(v) in trainable]
    return out


def _is_slot(opt, variable) -> bool:
    return any(s is variable for slots in opt._slots.values() for s in slots.values())


def _extra_weights(opt) -> dict:
    """The optimizer's state variables that are neither its iteration count nor slots (Nadam's
    ``momentum_cache``), by short name."""
    return {v.name.split("/")[-1].split(":")[0]: v for v in opt.weights
            if v is not opt._iterations and not _is_slot(opt, v)}


def optimizer_state(agent) -> Optional[dict]:
    """The agent's optimizer state, or ``None`` when the optimizer has made none (never trained).

    Args:
        agent: a compiled keras-rl2 ``DQNAgent``.

    Returns:
        ``{"class_name": "Adam", "iterations": int, "slot_names": ["m", "v"], "extra": {name:
        array}, "weights": [{"layer": "h1", "weight": "kernel", "shape": (2, 16), "slots": {"m":
        array, "v": array}}, ...]}``, one entry per trainable weight of ``agent.model`` in its
        order; the arrays are copies.

    Example:
        >>> state = optimizer_state(agent)
        >>> state["iterations"], state["weights"][0]["slots"]["m"].shape
        (52, (2, 16))
    """
    opt = inner_optimizer(agent)
    if opt._iterations is None and not opt._slots:
        return None
    named = _named_weights(agent.model)
    slot_names = list(opt.get_slot_names())
    variables, where = [opt.iterations], []
    for i, (_, _, var) in enumerate(named):
        slots = opt._slots.get(_var_key(var), {})
        for s in slot_names:
            if s in slots:
                variables.append(slots[s])
                where.append((i, s))
    extra = _extra_weights(opt)
    values = tf_keras.backend.batch_get_value(variables + list(extra.values()))
    weights = [{"layer": layer, "weight": name, "shape": tuple(int(d) for d in var.shape), "slots": {}}
               for layer, name, var in named]
    for (i, s), value in zip(where, values[1:]):
        weights[i]["slots"][s] = np.array(value)
    return {"class_name": type(opt).__name__, "iterations": int(values[0]), "slot_names": slot_names,
            "extra": {k: np.array(v) for k, v in zip(extra, values[1 + len(where):])}, "weights": weights}


def _var_key(var) -> str:
    from tf_keras.src.optimizers.legacy.optimizer_v2 import _var_key

    return _var_key(var)


def set_optimizer_state(agent, state: dict) -> None:
    """Create the slots of the agent's optimizer and write ``state`` into them, with its iteration count.

    The agent must be compiled with an optimizer of ``state["class_name"]``; its trainable weights
    must be those of the state (the same layer and weight names and shapes, in any order). Call it
    before or after the agent's first training step: the training function uses these slots.

    Args:
        agent: a compiled keras-rl2 ``DQNAgent``.
        state: from :func:`optimizer_state` (or :func:`map_optimizer_state`).

    Raises:
        ValueError: another optimizer class, a weight the state lacks or has in another shape (the
            message names it), or a slot the optimizer does not have; nothing is written then.

    Example:
        >>> set_optimizer_state(new_agent, optimizer_state(agent))
    """
    opt = inner_optimizer(agent)
    name = type(opt).__name__
    if state.get("class_name") != name:
        raise ValueError(f"the optimizer state comes from a {state.get('class_name')} optimizer, but the agent's "
                         f"optimizer is a {name}; compile the agent with a {state.get('class_name')}, or leave the "
                         "state out")
    named = _named_weights(agent.model)
    given = {(w["layer"], w["weight"]): w for w in state["weights"]}
    have = {(layer, weight) for layer, weight, _ in named}
    for layer, weight, var in named:
        w = given.get((layer, weight))
        if w is None:
            raise ValueError(f"the optimizer state has no entry for weight {weight!r} of layer {layer!r} (it has "
                             f"{', '.join(f'{a}/{b}' for a, b in given)}); take the state from this agent's network, "
                             "or carry it through the surgery with map_optimizer_state")
        missing = [s for s in state["slot_names"] if s not in w["slots"]]
        if missing:
            raise ValueError(f"the optimizer state of weight {weight!r} of layer {layer!r} lacks slots {missing} "
                             f"(it has {sorted(w['slots'])}); take the whole state from optimizer_state(agent)")
        shape = tuple(int(d) for d in var.shape)
        bad = {s: tuple(a.shape) for s, a in w["slots"].items() if tuple(a.shape) != shape}
        if tuple(w["shape"]) != shape or bad:
            raise ValueError(f"the optimizer state of weight {weight!r} of layer {layer!r} has shape "
                             f"{tuple(w['shape'])} (slots {bad or 'alike'}), the agent's weight {shape}; carry the "
                             "state through the surgery that changed the network with map_optimizer_state")
    extra = sorted(k for k in given if k not in have)
    if extra:
        raise ValueError(f"the optimizer state has entries for weights the agent's network lacks "
                         f"({', '.join(f'{a}/{b}' for a, b in extra)}); carry the state through the surgery that "
                         "changed the network with map_optimizer_state")
    variables = [v for _, _, v in named]
    with tf_keras.backend.name_scope("training"), tf_keras.backend.name_scope(opt._name):
        opt._create_all_weights(variables)
    slot_names = list(opt.get_slot_names())
    if set(state["slot_names"]) != set(slot_names):
        raise ValueError(f"the optimizer state has slots {state['slot_names']}, the agent's {name} has "
                         f"{slot_names} (another configuration, e.g. amsgrad or momentum); compile the agent with "
                         "the optimizer's saved config")
    targets, values = [opt.iterations], [np.int64(state["iterations"])]
    for layer, weight, var in named:
        slots = given[(layer, weight)]["slots"]
        for s in slot_names:
            targets.append(opt.get_slot(var, s))
            values.append(np.asarray(slots[s], dtype=var.dtype.as_numpy_dtype))
    extra_vars = _extra_weights(opt)
    for k, v in state.get("extra", {}).items():
        if k not in extra_vars:
            raise ValueError(f"the optimizer state has a variable {k!r} that the agent's {name} lacks; compile the "
                             "agent with the optimizer's saved class and config")
        targets.append(extra_vars[k])
        values.append(np.asarray(v))
    tf_keras.backend.batch_set_value(list(zip(targets, values)))
    logger.info("set the %s state: %d iterations, slots %s of %d weights", name, state["iterations"],
                slot_names, len(named))


def map_optimizer_state(state: dict, old_network, new_network, spec) -> dict:
    """The optimizer state carried through the surgery ``spec`` that made ``new_network`` from ``old_network``.

    The slots follow the weights (:func:`keras_surgeon_rl.surgeon.plan`): entries of kept units,
    features and actions are copied to their new positions; everything new (new units, input
    features, actions, inserted layers, re-initialized weights) starts at zero, also where the
    weights of a new unit are a copy (``keep_greedy`` and ``copy:<id>`` actions, Net2Net units).
    The next layer's rows that read a Net2Net copy get the copied unit's slots (unscaled: the
    ``scale`` and ``offset`` of weight maps do not apply to slots). The iteration count is kept.

    Args:
        state: :func:`optimizer_state` of an agent whose model (or, for a dueling agent, whose
            :func:`~keras_surgeon_rl.rl.resume.network_of`) is ``old_network``.
        old_network: the network the state belongs to, carrying its unit IDs.
        new_network: ``surgeon.transplant(old_network, spec)``.
        spec: the surgery spec.

    Returns:
        A state for ``new_network``'s trainable weights, in its order (layer and weight names as
        in ``new_network``).

    Raises:
        SurgeryError: the spec does not fit ``old_network``, ``new_network`` was not made by it, or
            the state does not belong to ``old_network``.

    Example:
        >>> new = surgeon.transplant(network_of(agent), {"units": {"h1": 32}})
        >>> state = map_optimizer_state(optimizer_state(agent), network_of(agent), new, {"units": {"h1": 32}})
    """
    maps: dict = {}
    plan_maps(surgeon.plan(old_network, spec), maps)
    old = {(w["layer"], w["weight"]): w for w in state["weights"]}
    for layer, weight, var in _named_weights(old_network):
        w = old.get((layer, weight))
        if w is None or tuple(w["shape"]) != tuple(int(d) for d in var.shape):
            raise SurgeryError(f"the optimizer state does not belong to the old network: weight {weight!r} of layer "
                               f"{layer!r} is {'missing' if w is None else 'of shape ' + str(tuple(w['shape']))}; "
                               "take the state and the network from the same agent")
    weights, kinds = [], {"copied": 0, "zero": 0}
    for layer, weight, var in _named_weights(new_network):
        shape = tuple(int(d) for d in var.shape)
        if (layer, weight) not in maps:
            raise SurgeryError(f"the new network's layer {layer!r} (weight {weight!r}) is not in the surgery plan; "
                               "pass the network that surgeon.transplant(old_network, spec) made with this spec")
        old_layer, m, new_units = maps[(layer, weight)]
        source = old.get((old_layer, m.source)) if isinstance(m, Copy) else None
        slots = {}
        for s in state["slot_names"]:
            if source is not None and s in source["slots"]:
                slots[s] = map_slot(m, source["slots"][s], shape, new_units)
            else:
                slots[s] = np.zeros(shape, dtype=np.float32)
            if slots[s].shape != shape:
                raise SurgeryError(f"the new network's weight {weight!r} of layer {layer!r} has shape {shape}, but "
                                   f"the spec makes {slots[s].shape}; pass the network this spec made")
        kinds["copied" if source is not None else "zero"] += 1
        weights.append({"layer": layer, "weight": weight, "shape": shape, "slots": slots})
    logger.info("optimizer state through surgery: %(copied)d weights' slots mapped, %(zero)d start at zero", kinds)
    return {"class_name": state["class_name"], "iterations": int(state["iterations"]),
            "slot_names": list(state["slot_names"]), "extra": {k: np.array(v) for k, v in state["extra"].items()},
            "weights": weights}
