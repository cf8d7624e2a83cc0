"""The open registry that maps layer classes to rules.

Built-in rules match the frameworks' own classes only (``keras.layers.Dense``, ``tf_keras.layers.Dense``,
…), never a user class that merely has the same name: a ``class Dense(keras.layers.Layer)`` of your
own, or a subclass of Keras' ``Dense`` with weights or behaviour of its own, is not Keras' Dense. A
rule registered by a user matches the class it was registered for, or every class of the name it
was registered under.

A user class that looks like a layer with a rule (a subclass of it, or a class of the same name)
but has no rule of its own is copied as it is while nothing reaching it changes; a change to it is
refused, asking for a rule (:class:`LookalikeRule`).

Example:
    >>> register_rule(MyDense, DenseRule())          # this class (a Dense in all but name)
    >>> register_rule("MyScale", PassThrough(per_unit_weights={"scale": -1}))  # any class of this name
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Node
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule, verbatim_maps

#: Root modules whose exported layer classes the built-in rules describe.
FRAMEWORKS = ("keras", "tf_keras")

_REGISTRY: dict[Any, Rule] = {}  # the user's rules, by class or class name
_BUILTIN: dict[str, Rule] = {}   # the built-in rules, by the framework class name
_OPS: dict[str, Rule] = {}       # rules for Keras 3's raw operations (keras.ops calls), by class name
OPS_MODULE = "keras.src.ops."


def register_rule(layer: Any, rule: Rule) -> None:
    """Use ``rule`` for layers of class ``layer`` (a class or a class name).

    Args:
        layer: a layer class (matches that class only, not its subclasses) or a class name such as
            ``"MyLayer"`` (matches any class of that name, the framework's own included).
        rule: a :class:`Rule` instance.

    Example:
        >>> register_rule("MyScale", PassThrough(per_unit_weights={"scale": -1}))
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"register_rule expects a Rule instance, got {type(rule).__name__}")
    _REGISTRY[layer] = rule


def register_builtin(class_name: str, rule: Rule) -> None:
    """Use ``rule`` for the frameworks' own layer class ``class_name`` (Keras 3 and tf_keras)."""
    _BUILTIN[class_name] = rule


def register_op(class_name: str, rule: Rule) -> None:
    """Use ``rule`` for Keras 3's raw operation ``class_name`` (``h + x`` records an ``Add`` operation,
    ``keras.ops.relu(h)`` a ``Relu``): classes of ``keras.src.ops``, not layers."""
    _OPS[class_name] = rule


def is_operation(cls: Any) -> bool:
    """True for a Keras 3 operation class (a ``keras.ops`` call in a Functional graph)."""
    return (getattr(cls, "__module__", None) or "").startswith(OPS_MODULE)


def framework_class(cls: Any) -> bool:
    """True for a layer class a framework exports under its name (``keras.layers.Dense`` itself)."""
    root = (getattr(cls, "__module__", None) or "").split(".")[0]
    if root not in FRAMEWORKS:
        return False
    layers = getattr(sys.modules.get(root), "layers", None)
    return getattr(layers, getattr(cls, "__name__", ""), None) is cls


def names_foreign_object(config) -> bool:
    """True when a layer config names an object from outside the frameworks (a custom activation,
    initializer, regularizer, …: ``{"module": "my_module", "class_name": ...}``)."""
    if isinstance(config, dict):
        module = config.get("module")
        if isinstance(module, str) and "class_name" in config and module.split(".")[0] not in FRAMEWORKS:
            return True
        return any(names_foreign_object(v) for v in config.values())
    if isinstance(config, (list, tuple)):
        return any(names_foreign_object(v) for v in config)
    return False


def _own_rule(cls: Any, class_name: str) -> Optional[Rule]:
    if cls is not None and cls in _REGISTRY:
        return _REGISTRY[cls]
    if class_name in _REGISTRY:
        return _REGISTRY[class_name]
    if cls is None or framework_class(cls):  # an inserted layer (by name) or the framework's own class
        return _BUILTIN.get(class_name)
    return None


def rule_for(node: Node) -> Optional[Rule]:
    """The rule for the node's layer: the user's (by class, then by class name) or the built-in one
    for a framework class; for a user class that looks like a layer with a rule (a subclass of it,
    or a class of the same name), a :class:`LookalikeRule`; else ``None``."""
    if is_operation(node.layer_class):
        return _REGISTRY.get(node.layer_class) or _OPS.get(node.class_name)
    rule = _own_rule(node.layer_class, node.class_name)
    if rule is not None or node.layer_class is None:
        return None if rule is None else rule.specialize(node)
    for base in getattr(node.layer_class, "__mro__", ())[1:]:
        parent = _own_rule(base, base.__name__)
        if parent is not None:
            return LookalikeRule.of(node, parent, f"a subclass of {class_path(base)} without a rule of its own")
    if node.class_name in _BUILTIN:
        return LookalikeRule.of(node, _BUILTIN[node.class_name], f"a class of its own "
                                f"({class_path(node.layer_class)}), not the framework's {node.class_name}")
    return None


def registered() -> list[str]:
    """Names of the layer classes that have a rule, sorted."""
    return sorted(set(_BUILTIN) | {k if isinstance(k, str) else k.__name__ for k in _REGISTRY})


def class_path(cls: Any) -> str:
    """``module.QualName`` of a class, for messages."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', getattr(cls, '__name__', cls))}"


class LookalikeRule(Rule):
    """A user layer class that looks like one with a rule (a subclass of it, or a class of the same
    name) but has no rule of its own.

    Its weights or its call may differ from the rule's layer, so the surgeon cannot know how they
    follow its units: it counts units as the look-alike does (so ``units`` and ``outputs`` reach it),
    copies every weight as it is while nothing reaching it changes, and refuses any change to its
    units or to the units reaching it, asking for a rule.
    """

    def __init__(self, node: Node, base_rule: Rule, what: str):
        self.node, self.base_rule, self.what = node, base_rule, what
        self.owns_units = base_rule.owns_units

    @classmethod
    def of(cls, node: Node, base_rule: Rule, what: str) -> Optional["LookalikeRule"]:
        if base_rule.owns_units:
            try:
                base_rule.unit_count(node.config)
            except Exception:  # its config is not the look-alike's: a layer of its own kind
                return None
        return cls(node, base_rule, what)

    def refusal(self) -> SurgeryError:
        return SurgeryError(
            f"layer {self.node.name!r} ({self.node.class_name}) is {self.what}, and its units or the units reaching "
            "it change; the surgeon cannot know how its weights follow its units. Register a rule for it: "
            f"{how_to_register(self.node, type(self.base_rule).__name__ + '(...)')}")

    def unit_count(self, config: dict) -> int:
        return self.base_rule.unit_count(config)

    def unit_axis(self, config: dict, rank: int) -> int:
        return self.base_rule.unit_axis(config, rank)

    def resize(self, config: dict, n: int) -> dict:
        raise self.refusal()

    def check(self, ctx: Context) -> None:
        if ctx.changed:
            raise self.refusal()

    def output_ids(self, ctx: Context) -> TensorIDs:
        shape = tuple(ctx.old_out_shape)
        try:
            out = self.base_rule.output_ids(ctx)
        except Exception:  # the look-alike's rule cannot read this layer: plain IDs instead
            out = None
        if out is not None and tuple(out.shape) == shape and shape and shape[out.axis] == out.width:
            return out
        return TensorIDs.unchanged(range(shape[-1] if shape and shape[-1] is not None else 0), shape)

    def weight_maps(self, ctx: Context) -> dict:
        return verbatim_maps(ctx.old)


def how_to_register(node: Node, rule: str = "rule") -> str:
    """The ``register_rule`` call that would teach the surgeon ``node``'s layer, for messages."""
    cls = node.layer_class
    if cls is None or framework_class(cls):
        return f"keras_surgeon_rl.register_rule({node.class_name!r}, {rule})"
    by_class = f"keras_surgeon_rl.register_rule({getattr(cls, '__name__', node.class_name)}, {rule})"
    if node.class_name in _BUILTIN:
        return (f"{by_class}, with the class {class_path(cls)} itself (the name {node.class_name!r} is the "
                f"framework's own {node.class_name})")
    return by_class
