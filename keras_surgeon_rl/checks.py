"""What the planner checks on every layer, whatever its rule says.

A rule describes how one kind of layer takes a change. Some things no rule sees, so they are
checked here for every layer, before anything is built:

- a layer nothing about which changes is copied as it is, every weight verbatim, whatever its rule
  would map (a quantized or LoRA layer, a BatchNormalization on another axis, a layer with weights
  its rule does not know all keep working when the surgery happens elsewhere);
- a quantized layer (Keras 3 ``layer.quantize(...)``) cannot take a change: its integer kernel and
  scales do not follow unit IDs the way float weights do;
- a layer called on several tensors cannot take a change through a rule written for one input;
- a changed layer's rule must give one unit ID per unit of its output's unit axis, and map every
  weight the old layer has, from weights it has;
- the framework must accept a changed layer's config on its new input shapes, and rebuild an
  unchanged layer it might not (a user's class, a ``Lambda``) with the same output shape.

Example:
    >>> rule = guarded(rule_for(node), changed=True)
    >>> rule.check(ctx)            # the rule's own checks and the ones above
"""

from __future__ import annotations

from typing import Optional

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Node
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules import Context, Rule
from keras_surgeon_rl.rules.base import verbatim_maps
from keras_surgeon_rl.rules.registry import framework_class, names_foreign_object
from keras_surgeon_rl.weights import Copy


def quantization(node: Node) -> Optional[str]:
    """The quantization mode of a layer (``"int8"``, ``"int4/128"``, ``"float8"``, …), or ``None``.

    Read from the layer's dtype policy (Keras 3 writes it into the config) and, for layers of other
    origins, from integer-typed weights.
    """
    dtype = node.config.get("dtype")
    if isinstance(dtype, dict):
        mode = (dtype.get("config") or {}).get("mode")
        if mode:
            return str(mode)
    if isinstance(dtype, str) and "_from_" in dtype:  # older Keras 3: "int8_from_float32"
        return dtype.split("_from_")[0]
    for name, w in node.weights:
        if w.dtype.kind in "iu" and w.ndim > 0:  # a scalar counter (Normalization's count) is no kernel
            return f"{w.dtype} weight {name!r}"
    return None


def guarded(rule: Rule, changed: bool) -> "Guarded":
    """``rule`` with the checks every layer gets (see the module docstring)."""
    return Guarded(rule, changed)


class Guarded(Rule):
    """A layer's rule, with the checks of this module around it.

    Args:
        rule: the layer's own rule.
        changed: the units reaching the layer, or its own units, change.
    """

    def __init__(self, rule: Rule, changed: bool):
        self.rule, self.changed = rule, changed
        self.owns_units, self.several_inputs = rule.owns_units, rule.several_inputs

    def unit_count(self, config: dict) -> int:
        return self.rule.unit_count(config)

    def resize(self, config: dict, n: int) -> dict:
        return self.rule.resize(config, n)

    def unit_axis(self, config: dict, rank: int) -> int:
        return self.rule.unit_axis(config, rank)

    def config_for(self, ctx: Context) -> dict:
        return self.rule.config_for(ctx)

    def check(self, ctx: Context) -> None:
        if self.changed and ctx.old is not None:
            mode = quantization(ctx.old)
            if mode:
                raise ctx.fail(f"it is quantized ({mode}), and its units or the units reaching it change; a "
                               "quantized kernel and its scales cannot be re-cut by unit ID. Do the surgery on the "
                               "float model and quantize the new model afterwards "
                               f"(new_model.quantize({mode.split('/')[0].split(' ')[0]!r}))")
            if len(ctx.inputs) > 1 and not self.rule.several_inputs:
                raise ctx.fail(f"it is called on {len(ctx.inputs)} tensors ({', '.join(ctx.node.inbound)}), but its "
                               f"rule ({type(self.rule).__name__}) reads one; keep the units reaching it unchanged, "
                               "or register a rule for it that sets several_inputs = True")
        self.rule.check(ctx)

    def output_ids(self, ctx: Context) -> TensorIDs:
        out = self.rule.output_ids(ctx)
        size = out.shape[out.axis] if out.shape else None
        if size is None or out.width == size:
            return out
        if not self.changed:  # e.g. pooling over the axis the (unchanged) IDs are on: count its units anew
            return TensorIDs.unchanged(range(size), tuple(out.shape), out.axis)
        raise ctx.fail(f"its rule ({type(self.rule).__name__}) gives {out.width} unit IDs for an output axis of size "
                       f"{size} (shape {tuple(out.shape)}, axis {out.axis + 1}): it does not fit this layer; keep the "
                       "units reaching it unchanged, or register a rule for it")

    def weight_maps(self, ctx: Context) -> dict:
        if not self.changed:
            return verbatim_maps(ctx.old)
        maps = self.rule.weight_maps(ctx)
        check_maps(ctx, maps, type(self.rule).__name__)
        return maps


def check_maps(ctx: Context, maps: dict, rule_name: str) -> None:
    """Every old weight of a changed layer is mapped, and every copy reads a weight the layer has,
    with one axis map per axis and indices inside it."""
    old = dict(ctx.old.weights)
    missing = [name for name in old if name not in maps]
    if missing:
        raise ctx.fail(f"its rule ({rule_name}) gives no mapping for its weight(s) {missing}, so the new layer "
                       "could not be filled; keep the units reaching it unchanged, or register a rule for it that "
                       "maps every weight")
    for name, m in maps.items():
        if not isinstance(m, Copy):
            continue
        source = old.get(m.source)
        if source is None:
            raise ctx.fail(f"its rule copies weight {name!r} from {m.source!r}, which the layer does not have "
                           f"(weights: {list(old)}); fix the rule")
        if len(m.axes) != source.ndim:
            raise ctx.fail(f"its rule maps {len(m.axes)} axes of weight {m.source!r}, which has {source.ndim} "
                           f"(shape {source.shape}); fix the rule")
        for axis, (a, dim) in enumerate(zip(m.axes, source.shape)):
            if a is not None and a.src.size and int(a.src.max()) >= dim:
                raise ctx.fail(f"its rule reads index {int(a.src.max())} of axis {axis} of weight {m.source!r}, "
                               f"which has {dim}; the rule does not fit this layer (e.g. its units are on "
                               "another axis): keep the units reaching it unchanged, or register a rule for it")


def may_not_rebuild(node: Node) -> bool:
    """True for a layer whose config the framework may not turn back into the same layer: a class
    of the user's (its ``get_config`` may leave out an argument), a ``Lambda`` (Keras 3 will not
    rebuild a Python lambda from its config), or a layer whose config names an object from outside
    the framework (a custom activation, initializer, regularizer…), which must be importable."""
    return (not framework_class(node.layer_class) or node.class_name == "Lambda"
            or names_foreign_object(node.config))


def rebuilt_shape(framework, node: Node, input_shapes: list, old_shape: tuple, changed: bool) -> tuple:
    """The output shape of ``node`` rebuilt from its config on ``input_shapes``, asked of the
    framework (one layer, no model).

    Raises:
        SurgeryError: the framework rejects the config (on these shapes), or an unchanged layer
            rebuilt from its config has another output shape than the old one.
    """
    try:
        out = tuple(framework.output_shape(node, input_shapes))
    except Exception as e:  # the framework rejects the config or the shapes
        if changed:
            raise SurgeryError(f"layer {node.name!r} ({node.class_name}) cannot take inputs of shape {input_shapes} "
                               f"after the change: {e}") from e
        hint = ("give it a named function decorated with @keras.saving.register_keras_serializable(), or make "
                "it a layer class" if node.class_name == "Lambda" else
                "register the custom objects its config names with @keras.saving.register_keras_serializable()"
                if names_foreign_object(node.config) else
                "give the class a get_config() that returns every argument of its __init__")
        raise SurgeryError(f"layer {node.name!r} ({node.class_name}) cannot be rebuilt from its config, so no new "
                           f"model can be made ({str(e).strip().rstrip('.')}); {hint}") from e
    if not changed and out != tuple(old_shape):
        raise SurgeryError(f"layer {node.name!r} ({node.class_name}) rebuilt from its config gives output shape "
                           f"{out}, but the model's layer gives {tuple(old_shape)}: its get_config() leaves out an "
                           "argument of its __init__. Return every argument from get_config()")
    return out
