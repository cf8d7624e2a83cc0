"""Which axis of a model input carries its units, when the spec does not say.

A channels-first image ``(3, 64, 64)`` has its units (colour channels) on axis 1 (counting the
batch axis, as the spec's ``'axis'`` does), a table ``(n_features,)`` or a channels-last image on the
last axis. The layers reading the input know: a convolution reads its ``data_format``'s channel
axis, a Dense the last axis. Layers that pass units through on any axis (activations, dropout,
normalizations, joins, ``Permute``) pass the question on to the layers after them; a
normalization's ``axis`` decides only when no layer after has a say.

Example:
    >>> reader_axes(graph, "img")
    {'conv1': 0}
"""

from __future__ import annotations

from keras_surgeon_rl.graph import Graph
from keras_surgeon_rl.rules import rule_for


def _consumers(graph: Graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.nodes.values():
        for src in dict.fromkeys(node.inbound):
            out.setdefault(src, []).append(node)
    return out


def reader_axes(graph: Graph, name: str) -> dict[str, int]:
    """The per-sample axis of node ``name``'s output that each layer reading it reads as units.

    Args:
        graph: the model graph.
        name: a node (a model input).

    Returns:
        ``{reader name: axis}`` for the first layers with a say on every path from ``name``
        (looking through layers that pass units on any axis); when none has a say, the layers that
        hint at an axis (a BatchNormalization's ``axis``); empty when none does either.
    """
    consumers = _consumers(graph)
    rank = len(graph.nodes[name].output_shape)
    found: dict[str, int] = {}
    hinted: dict[str, int] = {}
    stack, seen = [(name, list(range(rank)))], {name}
    while stack:
        current, axes = stack.pop()  # axes[j]: the axis of ``name`` that is axis j here
        for node in consumers.get(current, []):
            rule = rule_for(node)
            if rule is None:
                continue
            axis = rule.reads_axis(node.config, len(axes))
            if axis is not None:
                if 0 <= axis < len(axes):
                    found[node.name] = axes[axis]
                continue
            hint = rule.hints_axis(node.config, len(axes))
            if hint is not None and 0 <= hint < len(axes):
                hinted[node.name] = axes[hint]
            if node.name in seen or len(node.output_shape) != len(axes):
                continue
            mapped = [rule.input_axis_of(node.config, j) for j in range(len(axes))]
            if all(m is not None and 0 <= m < len(axes) for m in mapped):
                seen.add(node.name)
                stack.append((node.name, [axes[m] for m in mapped]))
    return found or hinted
