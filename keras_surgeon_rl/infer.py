"""The spec entries a model the user built implies: layers resized by hand (for ``transplant_weights``).

People often build the new network themselves, wider or narrower, and copy what fits.
:func:`infer_spec` compares that model with the old one, layer by layer by name, and rewrites the
spec before planning:

* a hidden layer that owns units (Dense units, Conv filters) with another size in the new model,
  which the spec does not mention, is read as ``units: {name: n}``: its units keep their IDs (the
  IDs the old model carries, else ``0..n-1``), extra units are new (started as the spec's ``init``
  says; ``preserve``: their outgoing weights are zero, so the function is unchanged) and, when it is
  narrower, the last units are removed. Hidden units mean nothing by position, so this is safe.
* model inputs (features) and output layers (actions, classes) mean something by position, and a
  different size says nothing about which unit is which (CartPole's ``[x_dot, theta]`` grows to
  ``[x, x_dot, theta, theta_dot]``: the new features are not appended). Their change is inferred
  only from unit IDs the new model carries (:func:`~keras_surgeon_rl.unit_ids.set_unit_ids`);
  otherwise the surgery is refused with the spec entry to give.

Every inference comes back as a note for the report row of its layer or input.

Example:
    >>> spec, notes = infer_spec(old_graph, new_graph, {})
    >>> notes["h0"]
    "new model has 96 units, old 64 — kept IDs 0..63, 32 new (inferred: the spec does not mention it)"
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Hashable, Optional, Sequence

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Graph, Node
from keras_surgeon_rl.new_units import fresh_ids
from keras_surgeon_rl.rules import rule_for
from keras_surgeon_rl.spec import IdChange, Spec

logger = logging.getLogger(__name__)

_UNMENTIONED = "the spec does not mention it"


def infer_spec(old: Graph, new: Graph, spec) -> tuple[Spec, dict[str, str]]:
    """The spec completed with the size changes ``new`` shows and ``spec`` leaves out.

    Args:
        old: the old model's graph.
        new: the graph of the model the user built (layers matched to ``old`` by name).
        spec: the spec (a dict or a :class:`~keras_surgeon_rl.spec.Spec`); never modified.

    Returns:
        ``(spec, notes)``: a new :class:`~keras_surgeon_rl.spec.Spec` with the inferred entries
        added, and a note per inferred input or layer name, for its report row.

    Raises:
        SurgeryError: an input or output layer has another size in ``new``, the spec does not say
            which units are which, and ``new`` carries no unit IDs for it; the message gives the
            entry to add.
    """
    given = Spec.parse(spec)
    out = dataclasses.replace(given, inputs=dict(given.inputs), outputs=dict(given.outputs), units=dict(given.units))
    notes: dict[str, str] = {}
    for name, new_name in _matched_inputs(old, new):
        _infer_input(old, new, name, new_name, given, out, notes)
    owners = _output_owners(old)
    mentioned = {_only(old.outputs) if k is None else k for k in given.outputs} - {None}
    for node in old.nodes.values():
        other = new.nodes.get(node.name)
        if node.is_input or other is None or other.is_input or other.class_name != node.class_name:
            continue  # a layer that does not match keeps the clear errors of planning and filling
        if node.name in given.units or node.name in given.delete or owners.get(node.name, "") in mentioned:
            continue
        rule = rule_for(node)
        if rule is None or not rule.owns_units:
            continue
        n_old, n_new = rule.unit_count(node.config), rule.unit_count(other.config)
        if n_old != n_new:
            _infer_layer(old, new, node.name, n_old, n_new, owners.get(node.name), out, notes)
    for name, note in notes.items():
        logger.info("transplant_weights: %r: %s", name, note)
    return out, notes


# Inputs --------------------------------------------------------------------------------------
def _matched_inputs(old: Graph, new: Graph) -> list[tuple[str, str]]:
    """Old and new input names: by name, else by position when both models have as many inputs."""
    if all(n in new.inputs for n in old.inputs):
        return [(n, n) for n in old.inputs]
    if len(old.inputs) == len(new.inputs):
        return list(zip(old.inputs, new.inputs))
    return []


def _infer_input(old: Graph, new: Graph, name: str, new_name: str, given: Spec, out: Spec,
                 notes: dict[str, str]) -> None:
    if name in given.inputs or (None in given.inputs and len(old.inputs) == 1):
        return
    s_old, s_new = tuple(old.nodes[name].output_shape), tuple(new.nodes[new_name].output_shape)
    if len(s_old) != len(s_new):
        return  # another rank: not a change of units; planning and filling say what does not fit
    differ = [a for a, (p, q) in enumerate(zip(s_old, s_new)) if p is not None and q is not None and p != q]
    if not differ:
        return
    carried = new.unit_ids["inputs"].get(new_name)
    axis = differ[0]
    if carried is not None and len(differ) == 1 and len(carried) == s_new[axis]:
        old_ids = old.unit_ids["inputs"].get(name) or list(range(s_old[axis]))
        _check_overlap(f"input {name!r}", old_ids, carried, "inputs")
        last = axis == len(s_old) - 1
        out.inputs[name] = IdChange(new=list(carried), axis=None if last else axis + 1)
        notes[name] = _note("features", old_ids, list(carried), "from the new model's unit IDs")
        return
    last = len(s_old) - 1
    if last not in differ:
        return  # e.g. another image size: no unit changes; planning and filling say what does not fit
    n_old, n_new = s_old[last], s_new[last]
    old_ids = old.unit_ids["inputs"].get(name) or list(range(n_old))
    example = list(old_ids) + [f"new_{i}" for i in range(max(n_new - n_old, 0))]
    raise SurgeryError(
        f"input {name!r}: the new model has {n_new} features, the old one {n_old}, and the spec does not say which "
        f"feature is which (new features are not always appended). Give them in the spec, e.g. 'inputs': {{{name!r}: "
        f"{{'old': {_short(old_ids)}, 'new': {_short(example[:n_new])}}}}}, or attach the new model's feature IDs "
        f"with set_unit_ids(new_model, inputs={{{new_name!r}: [...]}})")


# Layers --------------------------------------------------------------------------------------
def _infer_layer(old: Graph, new: Graph, name: str, n_old: int, n_new: int, output: Optional[str], out: Spec,
                 notes: dict[str, str]) -> None:
    old_ids = old.unit_ids["layers"].get(name) or list(range(n_old))
    carried = new.unit_ids["layers"].get(name)
    if carried is not None:
        _check_overlap(f"layer {name!r}", old_ids, carried, "units")
        if output is not None and _direct_owner(old, output) == name:
            out.outputs[output] = IdChange(new=list(carried))
        else:
            out.units[name] = list(carried)
        notes[name] = _note("units", old_ids, list(carried), "from the new model's unit IDs")
        return
    if output is not None:
        example = list(old_ids) + [f"new_{i}" for i in range(max(n_new - n_old, 0))]
        entry = (f"'outputs': {{{output!r}: {{'old': {_short(old_ids)}, 'new': {_short(example[:n_new])}}}}}"
                 if _direct_owner(old, output) == name else f"'units': {{{name!r}: [...]}}")
        raise SurgeryError(
            f"layer {name!r}: the new model has {n_new} units, the old one {n_old}, and its units are the model's "
            f"output {output!r} (actions or classes), so which unit is which cannot be guessed. Give them in the "
            f"spec, e.g. {entry}, or attach the new model's IDs with "
            f"set_unit_ids(new_model, layers={{{name!r}: [...]}})")
    out.units[name] = n_new
    new_ids = list(old_ids[:n_new]) + fresh_ids(old_ids, n_old, n_new - n_old)
    notes[name] = _note("units", old_ids, new_ids, "")


def _output_owners(g: Graph) -> dict[str, str]:
    """Layers that own units (Dense, Conv) whose units reach a model output with no such layer
    between: layer name -> output name."""
    owners: dict[str, str] = {}
    for out in g.outputs:
        stack, seen = [out], set()
        while stack:
            name = stack.pop()
            node = g.nodes[name]
            if name in seen or node.is_input:
                continue
            seen.add(name)
            rule = rule_for(node)
            if rule is not None and rule.owns_units:
                owners.setdefault(name, out)
            elif rule is not None:  # a layer without a rule mixes what it reads as far as we know
                stack.extend(node.inbound)
    return owners


def _direct_owner(g: Graph, out: str) -> Optional[str]:
    """The layer whose units ``outputs[out]`` names: the first owner of units up a one-input chain."""
    name = out
    while not g.nodes[name].is_input:
        node = g.nodes[name]
        rule = rule_for(node)
        if rule is not None and rule.owns_units:
            return name
        if rule is None or len(node.inbound) != 1:
            return None
        name = node.inbound[0]
    return None


# Helpers -------------------------------------------------------------------------------------
def _only(names: list[str]) -> Optional[str]:
    return names[0] if len(names) == 1 else None


def _check_overlap(what: str, old_ids: list, new_ids: list, key: str) -> None:
    if not set(old_ids) & set(new_ids):
        raise SurgeryError(
            f"{what}: the new model carries unit IDs {_short(new_ids)}, which share none with the old model's "
            f"{_short(old_ids)}, so nothing would be copied; attach the IDs of the old model too (set_unit_ids), or "
            f"give '{key}' in the spec")


def _note(what: str, old_ids: list, new_ids: list, how: str) -> str:
    """``new model has 96 units, old 64 — kept IDs 0..63, 32 new (inferred: …)``."""
    old_set, new_set = set(old_ids), set(new_ids)
    kept = [u for u in new_ids if u in old_set]
    added = len(new_ids) - len(kept)
    removed = [u for u in old_ids if u not in new_set]
    parts = [f"kept IDs {_span(kept)}" if kept else "kept none"]
    if added:
        parts.append(f"{added} new")
    if removed:
        parts.append(f"removed IDs {_span(removed)}")
    return (f"new model has {len(new_ids)} {what}, old {len(old_ids)} — {', '.join(parts)} "
            f"(inferred{' ' + how if how else ''}: {_UNMENTIONED})")


def _span(ids: Sequence[Hashable]) -> str:
    """``0..63`` for a run of integers, else the IDs (shortened)."""
    ints = all(isinstance(u, int) and not isinstance(u, bool) for u in ids)
    if ints and len(ids) > 2 and list(ids) == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}..{ids[-1]}"
    if len(ids) <= 6:
        return ", ".join(repr(u) for u in ids)
    return ", ".join(repr(u) for u in ids[:3]) + ", …, " + repr(ids[-1])


def _short(ids: Sequence[Hashable]) -> str:
    """A spec list for a message: whole when short, else its ends."""
    ids = list(ids)
    if len(ids) <= 8:
        return repr(ids)
    return "[" + ", ".join(repr(u) for u in ids[:3]) + ", …, " + repr(ids[-1]) + "]"
