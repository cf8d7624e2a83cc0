"""From a model graph and a spec to a validated plan: the new graph and a weight map per layer.

The planner walks the old graph once in topological order. For every node it works out the unit
IDs of its inputs (:class:`~keras_surgeon_rl.ids.TensorIDs`), asks the layer's rule for the new
config, the output IDs and the weight maps, and records a report row. Deleted layers are bridged
(their readers take their input, unit ``i`` for unit ``i``), inserted layers are created from the
spec. Every check runs here, so a bad spec fails before any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Optional, Protocol

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Graph, Node
from keras_surgeon_rl.ids import TensorIDs, index_of
from keras_surgeon_rl.input_axis import reader_axes
from keras_surgeon_rl.report import LayerReport, Report
from keras_surgeon_rl.checks import guarded, may_not_rebuild, rebuilt_shape
from keras_surgeon_rl.rules import Context, Rule, Units, rule_for
from keras_surgeon_rl.rules.registry import framework_class, how_to_register
from keras_surgeon_rl.rules.dense import inserted_note
from keras_surgeon_rl.spec import IdChange, Insertion, Spec, suggest
from keras_surgeon_rl.new_units import hidden_units, output_units
from keras_surgeon_rl.budget import check_plan_size, check_size
from keras_surgeon_rl.unit_ids import check_graph
from keras_surgeon_rl.weights import ArrayMap, Copy, Fresh, LayerStats


class Framework(Protocol):
    """What the planner needs from an adapter (no model is built)."""

    def layer_class(self, class_name: str): ...

    def output_shape(self, node: Node, input_shapes: list[tuple]) -> tuple: ...


@dataclass
class LayerPlan:
    """How one layer of the new model is made."""

    node: Node  # the new node (new config, new inbound)
    old: Optional[Node]
    maps: dict[str, ArrayMap]
    report: LayerReport
    units_ids: Optional[list] = None  # an inserted layer's unit IDs
    sub: Optional["Plan"] = None  # a nested model's own plan


@dataclass
class Plan:
    """A validated surgery: the new graph, a weight map per layer and the report.

    ``str(plan)`` is the dry-run table.
    """

    old: Graph
    new: Graph
    layers: dict[str, LayerPlan]
    inputs: dict[str, TensorIDs]   # new input name -> IDs
    outputs: list[TensorIDs]       # per model output, in order
    report: Report
    spec: Spec = field(repr=False, default=None)

    def __str__(self) -> str:
        return str(self.report)


def make_plan(graph: Graph, spec, framework: Framework) -> Plan:
    """Validate ``spec`` against ``graph`` and plan the new model.

    Raises:
        SurgeryError: for every problem with the spec or the model, naming the layer and the fix.
    """
    spec = Spec.parse(spec)
    try:
        check_graph(graph, graph.unit_ids)
    except SurgeryError as e:
        raise SurgeryError(f"the unit IDs model {graph.name!r} carries (from set_unit_ids or its sidecar) do not "
                           f"fit it: {e}; set them again with set_unit_ids(model, ..., replace=True)") from e
    given_outputs = set(spec.outputs)
    _check_names(graph, spec)
    plan = _Planner(graph, spec, framework, given_outputs).run()
    check_plan_size(plan.report)
    return plan


# --------------------------------------------------------------------------------------------
def _resolve(key: Optional[str], names: list[str], what: str) -> str:
    if key is None:
        if len(names) != 1:
            raise SurgeryError(f"the model has {len(names)} {what}s ({', '.join(names)}); key the spec's "
                               f"'{what}s' by {what} name instead of giving 'old'/'new' directly")
        return names[0]
    if key not in names:
        raise SurgeryError(f"spec '{what}s' names {key!r}, which is not a model {what}; the model's {what}s "
                           f"are {', '.join(names)}.{suggest(key, names)}")
    return key


def _check_names(graph: Graph, spec: Spec) -> None:
    layers = [n for n in graph.nodes if not graph.nodes[n].is_input]

    def known(name, where) -> bool:
        """True for a layer of this graph; False for one inside a nested model (its plan checks it)."""
        found = graph.find(name)
        if not found:
            raise SurgeryError(f"spec '{where}' names layer {name!r}, which the model {graph.name!r} does not "
                               f"have.{suggest(name, graph.nodes)} Layers: {', '.join(layers)}")
        if len(found) > 1:
            where_all = ", ".join("/".join(path + (name,)) for path, _ in found)
            raise SurgeryError(f"spec '{where}' names layer {name!r}, but the model and the models nested in it have "
                               f"{len(found)} layers of that name ({where_all}); rename the layers so that "
                               "each name is used once")
        path, node = found[0]
        if node.shares is not None:
            raise SurgeryError(f"spec '{where}' names {name!r}, a later call of the shared layer {node.shares!r}; "
                               f"name the layer itself ({node.shares!r}): all its calls change alike")
        shared = [n.name for n in graph.nodes.values() if n.shares == name]
        if shared and where in ("insert", "delete"):
            raise SurgeryError(f"{where} {name!r}: layer {name!r} is shared (called {len(shared) + 1} times, also as "
                               f"{', '.join(map(repr, shared))}), so one place to {where} it is not defined; use separate "
                               "layers, or insert/delete after the calls")
        return not path

    spec.inputs = {_resolve(k, graph.inputs, "input"): v for k, v in spec.inputs.items()}
    spec.outputs = {_resolve(k, graph.outputs, "output"): v for k, v in spec.outputs.items()}
    for name in spec.units:
        known(name, "units")
    for ins in spec.insert:
        known(ins.after, "insert")
        if ins.after in spec.delete:
            raise SurgeryError(f"insert after {ins.after!r}: that layer is deleted by the same spec")
    for name in spec.delete:
        if not known(name, "delete"):
            continue
        node = graph.nodes[name]
        if node.is_input or name in graph.outputs:
            raise SurgeryError(f"delete {name!r}: model inputs and outputs cannot be deleted; change their "
                               "units with 'inputs'/'outputs' instead")
        if len(node.inbound) != 1:
            raise SurgeryError(f"delete {name!r}: it joins {len(node.inbound)} inputs; only layers with one "
                               "input can be deleted")
        if name in spec.units:
            raise SurgeryError(f"layer {name!r} is both resized ('units') and deleted ('delete'); pick one")


def _check_implicit(where: str, what: str, default: list, new: Optional[list]) -> None:
    """Refuse a ``new`` that keeps none of the default IDs ``0..n-1`` of units that carry no IDs: it
    would silently drop every learned weight of them (the usual cause: names in ``new``, no ``old``)."""
    if new is None or not default or (index_of(default, new) >= 0).any():
        return
    raise SurgeryError(f"{where}.new keeps none of the units of {what}: it carries no unit IDs, so its units are "
                       f"0..{len(default) - 1}, and 'new' names none of them ({new[:4]}…). Give 'old' (one ID per "
                       "current unit, in order), or attach IDs with set_unit_ids before the surgery")


def _sub_spec(spec: Spec, sub: Graph, output: Optional[IdChange]) -> Spec:
    """The part of ``spec`` about the layers of the nested model ``sub`` (its inputs come from the
    outer plan; ``output``: a change of the outer model's output that the nested model produces)."""
    inside = lambda name: bool(sub.find(name))  # noqa: E731
    return Spec(inputs={}, outputs={} if output is None else {sub.outputs[0]: output},
                units={n: v for n, v in spec.units.items() if inside(n)},
                insert=[i for i in spec.insert if inside(i.after)], delete=[n for n in spec.delete if inside(n)],
                init=spec.init)


def _same_ids(a: TensorIDs, b: TensorIDs) -> bool:
    """Two tensors carry the same units from the same old units (what one set of weights can read)."""
    return (list(a.ids) == list(b.ids) and a.axis == b.axis and np.array_equal(a.src, b.src)
            and np.array_equal(a.scale, b.scale) and a.fresh == b.fresh and len(a.shape) == len(b.shape))


def _describe(t: TensorIDs) -> str:
    ids = list(t.ids)
    return f"{len(ids)} units {ids[:6]}{'…' if len(ids) > 6 else ''}" + (" (changed)" if t.changed else "")


class _Planner:
    def __init__(self, graph: Graph, spec: Spec, framework: Framework, given_outputs=frozenset(),
                 given_inputs: Optional[dict[str, TensorIDs]] = None):
        self._given_outputs = given_outputs  # the spec's keys (None: the shorthand), for messages
        self.g = graph
        self.spec = spec
        self.fw = framework
        self.given_inputs = given_inputs or {}  # a nested model's inputs: the IDs its call reads
        self.nested_outputs: dict[str, IdChange] = {}  # nested model -> change of the output it produces
        self.calls: dict[str, list[TensorIDs]] = {}  # layer -> IDs its first call reads
        self.units = self._unit_ids()
        self.alias: dict[str, tuple[str, TensorIDs]] = {}  # old node name -> (new producer, IDs read)
        self.nodes: dict[str, Node] = {}
        self.layers: dict[str, LayerPlan] = {}
        self.rows: list[LayerReport] = []
        self.inputs: dict[str, TensorIDs] = {}

    # Unit IDs of every layer that defines units ----------------------------------------------
    def _owner_of_output(self, out: str) -> str:
        name = out
        while True:
            node = self.g.nodes[name]
            rule = rule_for(node)
            if node.is_input:
                raise SurgeryError(f"output {out!r} is a model input; change its IDs through 'inputs'")
            if (rule is not None and rule.owns_units) or node.subgraph is not None:
                return node.layer
            if rule is None and not framework_class(node.layer_class):
                raise SurgeryError(
                    f"output {out!r}: its units come from {name!r} ({node.class_name}), which has no surgery rule; "
                    f"teach the surgeon this layer with {how_to_register(node)}")
            if rule is None or len(node.inbound) != 1:
                raise SurgeryError(
                    f"output {out!r}: its units come from {name!r} ({node.class_name}), which does not define "
                    "units of its own; give the IDs on the Dense/Conv layers feeding it with 'units'")
            name = node.inbound[0]

    def _unit_ids(self) -> dict[str, Units]:
        spec, g = self.spec, self.g
        old_ids: dict[str, list] = {}
        for node in g.nodes.values():
            rule = rule_for(node)
            if rule is not None and rule.owns_units and node.shares is None:
                n = rule.unit_count(node.config)
                carried = g.unit_ids["layers"].get(node.name)
                old_ids[node.name] = list(carried) if carried is not None else list(range(n))
        changes: dict[str, tuple[str, IdChange]] = {}
        for out, change in spec.outputs.items():
            owner = self._owner_of_output(out)
            if g.nodes[owner].subgraph is not None:  # produced inside a nested model: its plan changes it
                self.nested_outputs[owner] = change
                continue
            if owner in spec.units:
                raise SurgeryError(f"layer {owner!r} gets units from both 'outputs' ({out!r}) and 'units'; "
                                   "give them in one place")
            if change.old is None and owner not in g.unit_ids["layers"]:
                _check_implicit(f"outputs[{out!r}]", f"layer {owner!r}", old_ids[owner], change.new)
            if change.old is not None:
                if len(change.old) != len(old_ids[owner]):
                    raise SurgeryError(f"outputs[{out!r}].old lists {len(change.old)} IDs, but layer {owner!r} has "
                                       f"{len(old_ids[owner])} units; list one ID per unit, in order")
                old_ids[owner] = list(change.old)
            changes[owner] = (out, change)
        units: dict[str, Units] = {}
        for name, ids in old_ids.items():
            if name in changes:
                out, change = changes[name]
                where = "outputs" if None in self._given_outputs else f"outputs[{out!r}]"
                units[name] = output_units(g, name, out, ids, change, where)
            elif name in spec.units:
                check_size(g.nodes[name], spec.units[name])
                units[name] = hidden_units(name, ids, spec.units[name], spec.init)
            else:
                units[name] = Units.same(ids)
        for name in spec.units:
            if name not in units and name in g.nodes:  # (a nested model's layers are its plan's)
                node = g.nodes[name]
                raise SurgeryError(f"units[{name!r}]: layer {name!r} ({node.class_name}) has no units of its own to "
                                   "resize; only layers with units (Dense, Conv, SimpleRNN, GRU, LSTM, and Bidirectional "
                                   "or TimeDistributed around them) can be resized")
        return units

    # The walk --------------------------------------------------------------------------------
    def run(self) -> Plan:
        inserts: dict[str, list[Insertion]] = {}
        for ins in self.spec.insert:
            inserts.setdefault(ins.after, []).append(ins)
        for node in self.g.nodes.values():
            if node.is_input:
                self._input(node)
            elif node.name in self.spec.delete:
                self._delete(node)
            else:
                self._layer(node)
            for ins in inserts.get(node.name, []):
                self._insert(ins, node)
        outputs = [self.alias[o] for o in self.g.outputs]
        new = Graph(self.g.name, self.nodes, list(self.g.inputs), [p for p, _ in outputs],
                    self.g.sequential, self.g.flavour)
        new.unit_ids = {
            "inputs": {n: list(t.ids) for n, t in self.inputs.items() if t.shape[t.axis] is not None},
            "layers": {n: list(self.units[n].new_ids) if n in self.units else list(lp.units_ids)
                       for n, lp in self.layers.items() if n in self.units or lp.units_ids is not None},
        }
        for lp in self.layers.values():  # IDs are kept by layer name for nested models' layers too
            if lp.sub is not None:
                new.unit_ids["layers"].update(lp.sub.new.unit_ids["layers"])
        report = Report(self.g.name, self.rows)
        return Plan(self.g, new, self.layers, self.inputs, [t for _, t in outputs], report, self.spec)

    def _input_axis(self, node: Node, change: IdChange) -> int:
        """The input's unit axis (per sample): the spec's 'axis', else the one its readers read."""
        shape = tuple(node.output_shape)
        if change.axis is not None:
            axis = change.axis - 1 if change.axis > 0 else len(shape) + change.axis
            if not 0 <= axis < len(shape):
                raise SurgeryError(f"inputs[{node.name!r}].axis {change.axis} is outside the input's shape {shape}")
            return axis
        readers = reader_axes(self.g, node.name)
        axes = sorted(set(readers.values()))
        if len(axes) == 1:
            return axes[0]
        if axes and (change.old is not None or change.new is not None):
            said = ", ".join(f"{r!r} ({self.g.nodes[r].class_name}) axis {a + 1}" for r, a in readers.items())
            raise SurgeryError(f"input {node.name!r} (shape {shape}) is read as units on different axes: {said}; "
                               f"say which axis carries the IDs: 'inputs': {{{node.name!r}: {{..., 'axis': "
                               f"{axes[0] + 1}}}}}")
        return len(shape) - 1

    def _input(self, node: Node) -> None:
        if node.name in self.given_inputs:  # a nested model's input: what its call reads
            t = self.given_inputs[node.name]
            self.nodes[node.name] = Node(node.name, node.class_name, node.layer_class, dict(node.config), [],
                                         output_shape=t.shape, is_input=True, dtype=node.dtype)
            self.alias[node.name] = (node.name, t)
            return
        shape = tuple(node.output_shape)
        change = self.spec.inputs.get(node.name, IdChange())
        axis = self._input_axis(node, change)
        width = shape[axis]
        if width is None and change.old is None and change.new is None:
            width = 0  # token IDs of any length, nothing asked of them: no units to follow (none change)
        if width is None:
            raise SurgeryError(f"input {node.name!r} has no fixed size on its unit axis {axis + 1}: {shape}")
        carried = self.g.unit_ids["inputs"].get(node.name)
        if change.old is not None:
            old = change.old
        elif carried is not None:
            if len(carried) != width:
                raise SurgeryError(f"input {node.name!r} carries {len(carried)} unit IDs but has {width} features on "
                                   f"axis {axis + 1} (shape {shape}); give 'old' in inputs[{node.name!r}]")
            old = list(carried)
        else:
            old = list(range(width))
            _check_implicit(f"inputs[{node.name!r}]", f"input {node.name!r}", old, change.new)
        if len(old) != width:
            raise SurgeryError(f"inputs[{node.name!r}].old lists {len(old)} IDs, but the input has {width} "
                               f"features on axis {axis + 1} (shape {shape}); list one ID per feature, in order")
        new = change.new if change.new is not None else old
        t = TensorIDs.edited(old, new, shape, axis) if shape[axis] is not None else TensorIDs.unchanged([], shape, axis)
        self.inputs[node.name] = t
        new_node = Node(node.name, node.class_name, node.layer_class, dict(node.config), [],
                        output_shape=t.shape, is_input=True, dtype=node.dtype)
        self.nodes[node.name] = new_node
        self.alias[node.name] = (node.name, t)
        status = "changed" if t.changed else "kept"
        self.rows.append(LayerReport(node.name, node.class_name, f"input, {status}", shape, t.shape))

    def _delete(self, node: Node) -> None:
        producer, t = self.alias[node.inbound[0]]
        if tuple(self.g.nodes[node.inbound[0]].output_shape) != tuple(node.output_shape):
            raise SurgeryError(
                f"delete {node.name!r}: it maps shape {self.g.nodes[node.inbound[0]].output_shape} to "
                f"{node.output_shape}, so the layers after it would read a different shape; only layers whose "
                "input and output shapes match can be deleted (resize the layer before it with 'units' first)")
        old_ids = self.units[node.name].old_ids if node.name in self.units else t.old_ids
        bridged = TensorIDs(t.ids, t.src, t.scale, t.shape, t.axis, old_ids, tuple(node.output_shape), t.fresh)
        self.alias[node.name] = (producer, bridged)
        stats = LayerStats(dropped=sum(int(w.size) for _, w in node.weights))
        self.rows.append(LayerReport(node.name, node.class_name, "deleted", node.output_shape, None, stats,
                                     ["readers take its input in its place, unit i for unit i (exact only "
                                      "if the layer was an identity)"]))

    def _layer(self, node: Node) -> None:
        if node.selects is not None:
            return self._output_of(node)
        if node.shares is not None:
            return self._again(node)
        if node.subgraph is not None:
            return self._nested(node)
        inbound = [self.alias[n] for n in node.inbound]
        ins = [t for _, t in inbound]
        self.calls[node.name] = ins
        rule = rule_for(node)
        units = self.units.get(node.name)
        changed = any(t.changed for t in ins) or (units is not None and units.changed)
        if rule is None:
            if changed:
                src = next(n for n, t in zip(node.inbound, ins) if t.changed)
                raise SurgeryError(
                    f"layer {node.name!r} ({node.class_name}) has no surgery rule, and the unit IDs reaching it "
                    f"from {src!r} change. Keep the units reaching it unchanged, or teach the surgeon this layer "
                    f"with {how_to_register(node)}")
            rule = _Verbatim()
        rule = guarded(rule, changed)
        config = dict(node.config)
        if units is not None and units.changed:
            config = rule.resize(config, len(units.new_ids))
        new_node = Node(node.name, node.class_name, node.layer_class, config, [p for p, _ in inbound],
                        node.call_as_list, dict(node.call_kwargs), call_constants=dict(node.call_constants))
        ctx = Context(new_node, node, ins, units, self.spec.init, tuple(node.output_shape), tuple(node.output_shape))
        rule.check(ctx)
        if changed:
            new_node.config = rule.config_for(ctx)
        if changed or may_not_rebuild(node):
            ctx.out_shape = rebuilt_shape(self.fw, new_node, [t.shape for t in ins], ctx.old_out_shape, changed)
        self._finish(rule, ctx, "changed" if changed else "kept")

    def _output_of(self, node: Node) -> None:
        """One output of a layer with several (``rnn[1]``, an RNN's state with ``return_state``): the
        first output carries the layer's IDs as its rule says; a recurrent layer's other outputs (its
        states; a Bidirectional layer's backward sequence with ``merge_mode=None``) carry its units' IDs."""
        producer, t = self.alias[node.inbound[0]]
        source = self.g.nodes[node.inbound[0]]
        k = node.selects
        units = self.units.get(source.layer)
        changed = t.changed or (units is not None and units.changed)
        shape = tuple(node.output_shape)
        if k == 0:
            out = t
        elif not changed:
            out = TensorIDs.unchanged(range(shape[-1] if shape and shape[-1] is not None else 0), shape)
        elif (units is not None and getattr(rule_for(source), "states_follow_units", False) and shape
              and shape[-1] == len(units.old_ids)):
            new_shape = shape[:-1] + (len(units.new_ids),)
            out = TensorIDs(list(units.new_ids), units.src, units.scale, new_shape, len(shape) - 1,
                            list(units.old_ids), shape)
        else:
            raise SurgeryError(f"output {k} of layer {source.name!r} ({source.class_name}) is read, and the unit IDs "
                               "reaching the layer change; the surgeon follows the extra outputs of recurrent layers "
                               "(their states) only. Read only the layer's first output, or keep its units unchanged")
        new_node = Node(node.name, node.class_name, None, dict(node.config), [producer], output_shape=tuple(out.shape))
        self.nodes[node.name] = new_node
        self.alias[node.name] = (node.name, out)
        self.rows.append(LayerReport(node.name, "output", f"output {k} of {source.name!r}", shape, tuple(out.shape)))

    def _nested(self, node: Node) -> None:
        """A nested model: planned on its own with the IDs its call reads; its layers keep their names."""
        inbound = [self.alias[n] for n in node.inbound]
        ins = [t for _, t in inbound]
        self.calls[node.name] = ins
        sub = node.subgraph
        if len(ins) != len(sub.inputs):
            raise SurgeryError(f"nested model {node.name!r} has {len(sub.inputs)} inputs but is called on "
                               f"{len(ins)} tensors; the surgeon follows nested models called on one tensor per input")
        spec = _sub_spec(self.spec, sub, self.nested_outputs.get(node.name))
        _check_names(sub, spec)
        plan = _Planner(sub, spec, self.fw, set(spec.outputs), dict(zip(sub.inputs, ins))).run()
        out = plan.outputs[0]
        changed = any(t.changed for t in ins) or any(r.status not in ("kept", "input, kept") for r in plan.report.rows)
        new_node = Node(node.name, node.class_name, node.layer_class, dict(node.config), [p for p, _ in inbound],
                        node.call_as_list, dict(node.call_kwargs), output_shape=tuple(out.shape), subgraph=plan.new)
        row = LayerReport(node.name, node.class_name, f"nested model, {'changed' if changed else 'kept'}",
                          node.output_shape, new_node.output_shape)
        self.nodes[node.name] = new_node
        self.alias[node.name] = (node.name, out)
        self.layers[node.name] = LayerPlan(new_node, node, {}, row, sub=plan)
        self.rows.append(row)
        for r in plan.report.rows:
            if not r.status.startswith("input"):
                r.name = f"{node.name}/{r.name}"
                self.rows.append(r)

    def _again(self, node: Node) -> None:
        """A later call of a shared layer: one layer, one set of weights, so it must read what the first
        call reads; its output IDs follow from the layer's rule as for the first call."""
        inbound = [self.alias[n] for n in node.inbound]
        ins = [t for _, t in inbound]
        first, new_first = self.g.nodes[node.shares], self.nodes[node.shares]
        seen = self.calls[node.shares]
        if len(ins) != len(seen) or not all(_same_ids(a, b) for a, b in zip(ins, seen)):
            diff = next(i for i, (a, b) in enumerate(zip(ins, seen)) if not _same_ids(a, b)) if len(ins) == len(seen) else 0
            raise SurgeryError(
                f"layer {node.shares!r} ({node.class_name}) is shared: called more than once, with one set of weights. "
                f"Its call {node.name!r} reads {_describe(ins[diff])} from {node.inbound[diff]!r}, but its first call "
                f"reads {_describe(seen[diff])} from {first.inbound[diff]!r}. Change the inputs of every call alike "
                "(e.g. the same 'inputs' change on every model input feeding it), or use separate layers")
        new_node = Node(node.name, node.class_name, node.layer_class, new_first.config, [p for p, _ in inbound],
                        node.call_as_list, dict(node.call_kwargs), call_constants=dict(node.call_constants),
                        shares=node.shares, subgraph=new_first.subgraph)
        if node.subgraph is not None:
            if tuple(node.output_shape) != tuple(first.output_shape):
                raise SurgeryError(f"nested model {node.shares!r} is called on inputs of different shapes; the surgeon "
                                   "follows a nested model called several times only on inputs of one shape")
            out = self.alias[node.shares][1]
        else:
            rule = rule_for(node) or _Verbatim()
            units = self.units.get(node.shares)
            changed = any(t.changed for t in ins) or (units is not None and units.changed)
            ctx = Context(new_node, node, ins, units, self.spec.init, tuple(node.output_shape), tuple(node.output_shape))
            rule = guarded(rule, changed)
            rule.check(ctx)
            if changed:
                ctx.out_shape = rebuilt_shape(self.fw, new_node, [t.shape for t in ins], ctx.old_out_shape, changed)
            out = rule.output_ids(ctx)
        new_node.output_shape = tuple(out.shape)
        self.nodes[node.name] = new_node
        self.alias[node.name] = (node.name, out)
        self.rows.append(LayerReport(node.name, node.class_name, f"call of shared {node.shares!r}",
                                     node.output_shape, new_node.output_shape))

    def _insert(self, ins: Insertion, after: Node) -> None:
        producer, t = self.alias[after.name]
        rule = rule_for(Node(ins.layer, ins.layer, None, {}))
        name = ins.config.get("name") or self._fresh_name(f"{after.name}_{ins.layer.lower()}")
        if name in self.g.nodes or name in self.nodes:
            raise SurgeryError(f"insert after {after.name!r}: the name {name!r} is taken; give another 'name'")
        config = rule.insert_config(ins, t, name)
        node = Node(name, ins.layer, self.fw.layer_class(ins.layer), config, [producer])
        n = rule.unit_count(config)
        k = min(n, t.width)
        extra, j = [], t.width
        while len(extra) < n - k:
            if j not in t.ids:
                extra.append(j)
            j += 1
        new_ids = list(t.ids[:k]) + extra
        src = np.concatenate([t.src[:k], -np.ones(n - k, np.int64)])
        scale = np.concatenate([t.scale[:k], np.ones(n - k)])
        units = Units(t.old_ids, new_ids, src, scale, np.zeros(n, bool), np.zeros(n))
        if rule.unit_axis(config, len(t.shape)) != t.axis:
            raise SurgeryError(f"insert after {after.name!r}: the {ins.layer} would read axis "
                               f"{rule.unit_axis(config, len(t.shape)) + 1} but the units are on axis {t.axis + 1}; "
                               "set its data_format to match")
        try:
            out_shape = self.fw.output_shape(node, [t.shape])
        except Exception as e:  # the framework rejects the config
            raise SurgeryError(f"insert after {after.name!r}: cannot place a {ins.layer} with config {config} "
                               f"on input shape {t.shape}: {e}") from e
        ctx = Context(node, None, [t], units, self.spec.init, out_shape, t.old_shape, insertion=ins)
        rule.check(ctx)
        inserted_note(ctx, after.class_name, after.config)
        self._finish(rule, ctx, "inserted", alias_of=after.name)

    def _fresh_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.g.nodes or name in self.nodes:
            k += 1
            name = f"{base}_{k}"
        return name

    def _finish(self, rule: Rule, ctx: Context, status: str, alias_of: Optional[str] = None) -> None:
        out = rule.output_ids(ctx)
        maps = rule.weight_maps(ctx)
        node = ctx.node
        node.output_shape = tuple(out.shape)
        stats = LayerStats()
        if ctx.old is not None:
            old_shapes = {n: w.shape for n, w in ctx.old.weights}
            for name, m in maps.items():
                if isinstance(m, Copy):
                    stats.add(m.counts(old_shapes[m.source], _new_shape(m, old_shapes[m.source])))
            for name, m in maps.items():
                if not isinstance(m, Copy):
                    stats.add(m.counts(old_shapes.get(name), old_shapes.get(name)))
        else:  # an inserted layer: everything is new
            for m in maps.values():
                stats.add(m.counts(None, m.shape))
        self.nodes[node.name] = node
        self.alias[alias_of or node.name] = (node.name, out)
        self.layers[node.name] = LayerPlan(node, ctx.old, maps, None,
                                           list(ctx.units.new_ids) if ctx.insertion and ctx.units else None)
        row = LayerReport(node.name, node.class_name, status, ctx.old_out_shape if ctx.old else None,
                          node.output_shape, stats, list(ctx.notes))
        self.layers[node.name].report = row
        self.rows.append(row)


def _new_shape(m: Copy, old_shape: tuple) -> tuple:
    return tuple(len(a.src) if a is not None else d for a, d in zip(m.axes, old_shape))


class _Verbatim(Rule):
    """A layer without a rule whose inputs did not change: copied as it is."""

    def output_ids(self, ctx: Context) -> TensorIDs:
        shape = tuple(ctx.old_out_shape)
        width = shape[-1] if shape and shape[-1] is not None else 0
        return TensorIDs.unchanged(range(width), shape)

    def weight_maps(self, ctx: Context) -> dict:
        return {name: Copy(name, [None] * w.ndim) for name, w in ctx.old.weights}
