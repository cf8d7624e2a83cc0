"""The keras.applications model zoo for the surgery tests, and the README's "Supported layers" table.

Shared by ``tests/core/test_zoo.py`` and ``bench/zoo_layers.py``:

* :data:`MODELS`: one constructor per ``keras.applications`` family, with the smallest input each
  builds at offline (``weights=None``; 10 classes keep the head small).
* :func:`layer_classes`: every layer class and raw ``keras.ops`` operation class in a model, nested
  models' layers included, as ``(kind, class name)`` pairs.
* :func:`readme_table`: the README's class-by-class table, ``{(kind, class name): verdict}``.
* :func:`refused_class`: the layer class a :class:`SurgeryError` names, and whether the README lists
  that class as refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from keras_surgeon_rl.adapters import adapter_for
from keras_surgeon_rl.rules import rule_for
from keras_surgeon_rl.rules.registry import is_operation

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_HEADING = "### Every layer class in keras.applications"
LAYER, OP = "layer", "keras.ops"

#: name: (constructor name in keras.applications, input side). 32 is the smallest input most take;
#: InceptionV3 and InceptionResNetV2 need 75, Xception 71.
MODELS = {
    "MobileNetV2": ("MobileNetV2", 32),
    "ResNet50": ("ResNet50", 32),
    "DenseNet121": ("DenseNet121", 32),
    "EfficientNetB0": ("EfficientNetB0", 32),
    "InceptionV3": ("InceptionV3", 75),
    "NASNetMobile": ("NASNetMobile", 32),
    "ConvNeXtTiny": ("ConvNeXtTiny", 32),
    "VGG16": ("VGG16", 32),
    "Xception": ("Xception", 71),
    "MobileNet": ("MobileNet", 32),
    "MobileNetV3Small": ("MobileNetV3Small", 32),
    "ResNet50V2": ("ResNet50V2", 32),
    "EfficientNetV2B0": ("EfficientNetV2B0", 32),
    "InceptionResNetV2": ("InceptionResNetV2", 75),  # ~800 layers: the exhaustive run only
}
#: The models the quick suite runs: every family but Inception-ResNet (~800 layers: 20 s to build on
#: a shared core, as long to rebuild), without ResNet50V2 and EfficientNetV2B0 (the same layer
#: classes as ResNet50 and EfficientNetB0). The exhaustive run (ZOO_ALL=1) takes every model.
QUICK = [m for m in MODELS if m not in ("InceptionResNetV2", "ResNet50V2", "EfficientNetV2B0")]


def build(name: str):
    """``keras.applications.<name>`` with random weights at its smallest input, seeded; its outputs are
    the 10 classes' logits (no softmax, which would hide differences where it saturates)."""
    constructor, side = MODELS[name]
    keras.utils.set_random_seed(0)
    return getattr(keras.applications, constructor)(weights=None, input_shape=(side, side, 3), classes=10,
                                                    classifier_activation=None)


def randomize(model, seed: int = 0):
    """Random per-unit weights, so copied ones are told apart from fresh ones, in a model whose outputs
    depend on its inputs.

    Kernels keep Keras' own initialization. Biases, scales and BatchNorm's beta and gamma get random
    values; then one pass in training mode over random images sets every BatchNorm's moving mean and
    variance to the statistics of the activations reaching it (momentum 0 for that pass), so no
    layer squashes the signal, as the depthwise convolutions of random MobileNets do with the
    initial statistics. A Normalization layer derives its state from its weights again (Keras 3 does
    that only in ``adapt`` and when loading), so the model computes with the values it holds.
    """
    rng = np.random.default_rng(seed)
    layers = _all_layers(model)
    for layer in layers:
        if not layer.weights:
            continue
        new = []
        for var, w in zip(layer.weights, layer.get_weights()):
            name = var.name.split("/")[-1]
            if w.ndim != 1 or w.dtype.kind != "f" or name.startswith("moving_"):
                new.append(w)
            elif "variance" in name or "gamma" in name or "scale" in name:
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                new.append(rng.normal(0, 0.1, w.shape).astype(w.dtype))
        layer.set_weights(new)
        if callable(getattr(layer, "finalize_state", None)):
            layer.finalize_state()
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not any(isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization))
               for layer in layers):
        _unit_variance(model, seed)
    momentum = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(_images(model, 16, seed), training=True)
    for layer, m in zip(norms, momentum):
        layer.momentum = m
    _unit_logits(model, seed)
    return model


def _unit_logits(model, seed: int) -> None:
    """Scale the output layer's kernel and bias so the logits have a standard deviation of 1 on random
    images: float32 then resolves them to about 1e-7, and 1e-5 is a relative tolerance."""
    std = float(np.asarray(model(_images(model, 8, seed + 2))).std())
    layer = model.get_layer(model.output_names[0])
    if std > 0 and layer.weights:
        layer.set_weights([w / std for w in layer.get_weights()])


def _unit_variance(model, seed: int) -> None:
    """Without normalization layers (VGG): scale each Dense/Conv layer's kernel and bias, in order, so
    its outputs on random images have a standard deviation of 1 (ReLU commutes with the scale)."""
    x = _images(model, 8, seed)
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) or layer.name in model.output_names:
            continue
        std = float(np.asarray(keras.Model(model.inputs[0], layer.output)(x)).std())
        if std > 0:
            layer.set_weights([w / std for w in layer.get_weights()])


def _all_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _images(model, n: int, seed: int) -> np.ndarray:
    shape = (n,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def sensitivity(model, n: int = 4, seed: int = 0) -> float:
    """The smallest, over output units, spread of the outputs over ``n`` random inputs: how much the
    outputs depend on the inputs (a verify within 1e-5 means something only when this is far above)."""
    y = np.asarray(model(_images(model, n, seed + 1)))
    return float(y.std(axis=0).min())


def graph_of(model):
    """The surgeon's neutral graph of ``model``."""
    return adapter_for(model).read(model)


def kind_of(node) -> str:
    return OP if is_operation(node.layer_class) else LAYER


def layer_classes(model) -> set[tuple[str, str]]:
    """``(kind, class name)`` of every layer and ``keras.ops`` operation in ``model``, nested models'
    layers and operations included (kind ``"layer"`` or ``"keras.ops"``)."""
    found = set()
    for op in getattr(model, "operations", None) or model.layers:  # a Sequential has no operations
        if isinstance(op, keras.layers.InputLayer):
            continue
        found.add((LAYER if isinstance(op, keras.layers.Layer) else OP, type(op).__name__))
        if isinstance(op, keras.Model):
            found |= layer_classes(op)
    return found


def owning_layers(graph, hidden: bool = False) -> list[str]:
    """Names of the layers that define their own units (Dense, Conv), by their rule's ``owns_units``,
    in graph order; ``hidden``: without the model's output layers."""
    return [n.name for n in graph.nodes.values()
            if (r := rule_for(n)) is not None and r.owns_units and not (hidden and n.name in graph.outputs)]


def unit_count(graph, name: str) -> int:
    node = graph.nodes[name]
    return rule_for(node).unit_count(node.config)


def sample(names: list[str]) -> list[str]:
    """The first, middle and last of ``names`` (fewer when there are fewer)."""
    return list(dict.fromkeys([names[0], names[len(names) // 2], names[-1]])) if names else []


def readme_table(path: Path = README) -> dict[tuple[str, str], str]:
    """The README's class-by-class table: ``{(kind, class name): verdict}``.

    A row names one or more classes in backticks in its first column, their kind (``layer`` or
    ``keras.ops``) in the second, and what the surgeon does in the third.
    """
    text = path.read_text(encoding="utf-8")
    start = text.index(TABLE_HEADING)
    rows = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] == "class":
            continue
        kind = OP if "keras.ops" in cells[1] else LAYER
        for name in re.findall(r"`([A-Za-z0-9_]+)`", cells[0]):
            rows[(kind, name)] = cells[2]
    return rows


def is_refused(verdict: str) -> bool:
    """The README says the surgeon refuses changes through this class (always or in some cases)."""
    return "refused" in verdict


def refused_class(message: str, graph) -> tuple[str, str]:
    """``(kind, class name)`` of the layer a :class:`SurgeryError` message names (``layer 'x' (Cls)``)."""
    m = re.search(r"layer '([^']+)' \(([A-Za-z0-9_]+)\)", message)
    if m is None:
        raise AssertionError(f"the refusal names no layer: {message}")
    name, cls = m.groups()
    node = graph.nodes.get(name)
    if node is None:
        raise AssertionError(f"the refusal names {name!r}, which the model does not hold: {message}")
    assert node.class_name == cls, f"the refusal calls {name!r} a {cls}, but it is a {node.class_name}"
    return kind_of(node), cls
