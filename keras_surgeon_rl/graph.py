"""The neutral graph the surgeon works on: layers, their configs and weights, and how they connect.

An adapter reads a Keras model into a :class:`Graph` once (:mod:`keras_surgeon_rl.adapters`), the
planner rewrites the graph, and the adapter builds the new Keras model from it once at the end.
Nothing in here imports a deep-learning framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


#: The class name of a node that stands for output ``config["index"]`` of the layer it reads (no layer of
#: its own): ``rnn[1]`` for the first state of ``rnn = LSTM(..., return_state=True)``.
OUTPUT_OF = "OutputOf"


def output_node(producer: "Node", index: int) -> "Node":
    """The :data:`OUTPUT_OF` node for output ``index`` of ``producer`` (a layer with several outputs)."""
    return Node(f"{producer.name}[{index}]", OUTPUT_OF, None, {"index": index}, [producer.name],
                output_shape=tuple(producer.outputs[index]))


@dataclass
class Node:
    """One layer call in the model.

    A layer called more than once (a shared layer) appears once per call: the first call under the
    layer's name, call ``k`` as ``name@k`` (:func:`call_name`) with ``shares`` naming the layer. A
    nested model (a Functional or Sequential model used as a layer) carries its own graph in
    ``subgraph``; its weights live there.

    Attributes:
        name: the layer's name; a layer keeps its name in the new model, and with it its weights.
        class_name: the layer's class name, which selects its surgery rule.
        layer_class: the framework class, used to build the new layer from ``config``.
        config: the layer's ``get_config()``.
        inbound: names of the nodes whose outputs this layer is called on, in order.
        call_as_list: the layer is called on a list of tensors (Concatenate, Add, …).
        call_kwargs: other keyword arguments of the call (no tensors).
        call_constants: positional arguments that are Python numbers, by position (``x * 2.0`` in
            Keras 3: the ``keras.ops`` multiply is called on a tensor and a constant); the tensors
            named by ``inbound`` fill the other positions, in order.
        weights: ``(short name, array)`` pairs in the layer's weight order (old model only).
        output_shape: per-sample output shape (no batch axis).
        is_input: the node is a model input (an ``InputLayer``).
        dtype: the input's dtype (model inputs only).
        shares: for call ``k > 0`` of a shared layer, the layer's name (the node of its first call).
        subgraph: for a nested model, the model's own graph.
        outputs: for a layer with several outputs (an RNN with ``return_state``), each output's
            per-sample shape; ``output_shape`` is the first's. Its readers read it through one
            :data:`OUTPUT_OF` node per output they use, named ``layer[k]``.
    """

    name: str
    class_name: str
    layer_class: Any
    config: dict
    inbound: list[str] = field(default_factory=list)
    call_as_list: bool = False
    call_kwargs: dict = field(default_factory=dict)
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)
    output_shape: tuple = ()
    is_input: bool = False
    dtype: Optional[str] = None
    call_constants: dict = field(default_factory=dict)
    shares: Optional[str] = None
    subgraph: Optional["Graph"] = None
    outputs: list[tuple] = field(default_factory=list)

    @property
    def selects(self) -> Optional[int]:
        """For a node that stands for one output of a layer with several (:data:`OUTPUT_OF`), its index."""
        return self.config.get("index") if self.class_name == OUTPUT_OF else None

    @property
    def layer(self) -> str:
        """The name of the layer this node calls (its own name, unless it is a later call of a shared one)."""
        return self.shares or self.name

    def weight(self, name: str) -> np.ndarray:
        for n, w in self.weights:
            if n == name:
                return w
        raise KeyError(f"layer {self.name!r} has no weight {name!r}")

    @property
    def weight_names(self) -> list[str]:
        return [n for n, _ in self.weights]


@dataclass
class Graph:
    """A model as nodes in topological order.

    Attributes:
        name: the model's name.
        nodes: every node, by name, in topological order (inputs first).
        inputs: names of the input nodes, in the model's input order.
        outputs: names of the nodes whose outputs are the model's outputs, in order.
        sequential: the model is a ``Sequential``.
        flavour: ``"keras3"`` or ``"tf_keras"``.
        unit_ids: IDs the model carries (:mod:`keras_surgeon_rl.unit_ids`): ``{"inputs": {name:
            ids}, "layers": {name: ids}}``; everything else counts ``0..n-1``.
    """

    name: str
    nodes: dict[str, Node]
    inputs: list[str]
    outputs: list[str]
    sequential: bool
    flavour: str
    unit_ids: dict = field(default_factory=lambda: {"inputs": {}, "layers": {}})

    def find(self, name: str) -> list[tuple[tuple[str, ...], "Node"]]:
        """Every node called ``name`` here or in a nested model, as ``(path of nested model names, node)``."""
        found = [((), self.nodes[name])] if name in self.nodes else []
        for node in self.nodes.values():
            if node.subgraph is not None and node.shares is None:
                found += [((node.name,) + path, n) for path, n in node.subgraph.find(name)]
        return found

    def consumers(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.inbound]

    def is_chain(self) -> bool:
        """One input, one output, and every layer reads only the layer before it."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return False
        order = list(self.nodes)
        return all(
            len(node.inbound) == 1 and node.inbound[0] == order[i - 1] and not node.call_as_list
            for i, node in enumerate(self.nodes.values())
            if i > 0
        ) and order[-1] == self.outputs[0]


def call_name(layer: str, index: int) -> str:
    """The node name of call ``index`` of layer ``layer`` (the first call keeps the layer's name)."""
    return layer if index == 0 else f"{layer}@{index}"
