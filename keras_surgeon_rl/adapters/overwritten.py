"""Building a layer without drawing random values for weights that will be overwritten whole.

Keras draws every weight from its initializer when a layer is built (a random normal or uniform
draw per element), and :func:`keras_surgeon_rl.surgeon.transplant` then overwrites the weights that
are copied whole: for a large model most of the build is spent on numbers nobody reads. While the
new model is built, such a weight's initializer attribute (``kernel_initializer`` for ``kernel``)
is swapped for a :class:`Placeholder` that makes zeros, and swapped back once the model is built,
so the layer's config (``get_config``, ``to_json``, a saved model) still names the user's
initializer. Weights with new entries keep their initializer and are drawn as before.

Where the caller can make the weight's final value already (eager TensorFlow), the placeholder
returns that instead of zeros, and the variable is created holding it: no zeros tensor, no later
write, and no second full-size copy (the value is handed to TensorFlow without copying, see
:func:`keras_surgeon_rl.adapters.base.adopt`).

Only Keras's own layers are treated this way, and only where the initializer attribute can be named
from the weight's name; :func:`check` confirms afterwards that each placeholder made exactly the one
weight it stood for, or the caller builds again the ordinary way.

Example:
    >>> swaps = []
    >>> swap(layer, {"kernel"}, keras.initializers.Zeros(), swaps)   # before the layer is built
    >>> model = keras.Sequential([keras.Input((4,)), layer])
    >>> ok = check(swaps)
    >>> restore(swaps)                                                # layer.get_config() as before
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: Packages whose layers name a weight's initializer after the weight (``kernel`` / ``kernel_initializer``).
_OWN_PACKAGES = ("keras", "tf_keras")


class Placeholder:
    """An initializer that makes zeros, or the weight's final value, and records each call's shape.

    Attributes:
        weight: the weight it stands for.
        calls: the shapes it was called with.
        value: optional ``value(shape, dtype, drawn)`` giving the weight's final value (a tensor the
            new variable may hold as it is), or ``None`` where it cannot. When ``value.draws`` is
            true, the final value keeps some of the initializer's draws: the user's initializer
            (``original``) is called once, as the build would have, and its result passed as
            ``drawn`` (and returned as it is where ``value`` gives ``None``); otherwise ``drawn``
            is ``None`` and zeros stand in where ``value`` gives ``None``. ``value.discard()``,
            where it has one, is called when the model built with it is thrown away (:func:`discard`).
        original: the initializer it replaces.
        made: how many calls returned a final value.
    """

    def __init__(self, weight: str, zeros: Any, value: Any = None, original: Any = None):
        self.weight = weight
        self.calls: list[tuple] = []
        self.value = value
        self.original = original
        self.made = 0
        self._zeros = zeros

    def __call__(self, shape, dtype=None, **kwargs):
        self.calls.append(tuple(int(d) for d in shape))
        draws = self.value is not None and getattr(self.value, "draws", False) and self.original is not None
        drawn = self.original(shape, dtype=dtype, **kwargs) if draws else None
        if self.value is not None:
            final = self.value(tuple(int(d) for d in shape), dtype, drawn)
            if final is not None:
                self.made += 1
                return final
        return drawn if draws else self._zeros(shape, dtype=dtype)


@dataclass
class Swap:
    """One initializer attribute of one layer, swapped for a :class:`Placeholder`."""

    layer: Any
    attribute: str
    original: Any
    placeholder: Placeholder = field(repr=False)


def initializer_attribute(layer, weight: str) -> str | None:
    """The attribute of ``layer`` that holds ``weight``'s initializer, or ``None`` when unsure.

    ``kernel`` → ``kernel_initializer``; ``depthwise_kernel`` → ``depthwise_initializer``. A
    layer from outside Keras, a weight known only by position (``variable#0``), or an attribute that
    is a property (LSTM's delegate to its cell) gives ``None``.

    Args:
        layer: a layer, not yet built.
        weight: the weight's short name, as :meth:`KerasAdapter.get_weights` gives it.

    Returns:
        The attribute's name, or ``None``.
    """
    if type(layer).__module__.split(".")[0] not in _OWN_PACKAGES or "#" in weight:
        return None
    names = [f"{weight}_initializer"]
    if weight.endswith("_kernel"):
        names.append(f"{weight[:-len('_kernel')]}_initializer")
    found = [n for n in names if n in vars(layer) and not isinstance(getattr(type(layer), n, None), property)]
    return found[0] if len(found) == 1 else None


def swap(layer, weights, zeros, swaps: list) -> None:
    """Swap the initializers of ``layer``'s ``weights`` (those it can name) for placeholders.

    Args:
        layer: a layer, not yet built.
        weights: short names of the weights whose every entry will be overwritten; or a dict of
            weights to ``value(shape, dtype, drawn)`` (see :class:`Placeholder`; one with
            ``value.draws`` may keep some of its initializer's entries) or ``None``.
        zeros: the flavour's zeros initializer (called as ``zeros(shape, dtype=dtype)``).
        swaps: list the :class:`Swap` records are appended to, for :func:`check` and :func:`restore`.
    """
    values = weights if isinstance(weights, dict) else {}
    for weight in sorted(weights):
        attribute = initializer_attribute(layer, weight)
        if attribute is None:
            continue
        placeholder = Placeholder(weight, zeros, values.get(weight), getattr(layer, attribute))
        swaps.append(Swap(layer, attribute, getattr(layer, attribute), placeholder))
        object.__setattr__(layer, attribute, placeholder)


def check(swaps: list, weights_of) -> bool:
    """Whether every placeholder made exactly the one weight it stood for, of that weight's shape.

    Args:
        swaps: the :class:`Swap` records.
        weights_of: ``weights_of(layer)`` gives ``[(short name, array or variable), ...]`` of a built
            layer (only shapes are read).

    Returns:
        ``True`` when all is as planned.
    """
    shapes: dict[int, dict] = {}
    for s in swaps:
        have = shapes.setdefault(id(s.layer), None) or {n: tuple(int(d) for d in a.shape)
                                                         for n, a in weights_of(s.layer)}
        shapes[id(s.layer)] = have
        calls = s.placeholder.calls
        if len(calls) != 1 or have.get(s.placeholder.weight) != calls[0]:
            logger.debug("layer %r: initializer %s made %s, not one %r; building again", s.layer.name, s.attribute,
                         calls, s.placeholder.weight)
            return False
    return True


def discard(swaps: list) -> None:
    """Tell every placeholder's ``value`` (those that have a ``discard``) that the model built with it
    is thrown away, so nothing it made is taken for a weight's value.

    Args:
        swaps: the :class:`Swap` records of that build.
    """
    for s in swaps:
        done = getattr(s.placeholder.value, "discard", None)
        if callable(done):
            done()


def restore(swaps: list) -> None:
    """Put every swapped initializer back, so the layers' configs name the user's initializers."""
    for s in reversed(swaps):
        object.__setattr__(s.layer, s.attribute, s.original)
