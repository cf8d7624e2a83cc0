"""Reading a Keras model into the neutral graph and building a model back from one.

Keras 3 and tf_keras (Keras 2) share almost all of the API used here (``get_config``,
``from_config``, ``Input``, ``Model``, ``Sequential``, ``get_weights``/``set_weights``). What
differs, how a functional config records which tensors a layer was called on, lives in the two
small subclasses :mod:`.keras3` and :mod:`.tf_keras`.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
from collections import Counter
from typing import Any

import numpy as np

from keras_surgeon_rl.adapters.overwritten import check as overwrite_check
from keras_surgeon_rl.adapters.overwritten import discard as discard_values
from keras_surgeon_rl.adapters.overwritten import restore as restore_initializers
from keras_surgeon_rl.adapters.overwritten import swap as swap_initializers
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Graph, Node, call_name, output_node
from keras_surgeon_rl.rules.registry import names_foreign_object
from keras_surgeon_rl.unit_ids import get_unit_ids

logger = logging.getLogger(__name__)

#: Config keys that pin a layer's input shape; the rebuilt model gets its shapes from Input. A key
#: the layer's own constructor names (Embedding's ``input_dim``, its vocabulary size) is kept.
_INPUT_SHAPE_KEYS = ("batch_input_shape", "batch_shape", "input_shape", "input_dim")
#: The names Keras gives a weight created without one (Keras 3: 'variable', 'variable_3'; tf_keras: '', 'Variable').
_AUTO_NAME = re.compile(r"(?:variable|Variable)?(?:_\d+)?")


def _own_arguments(cls) -> set:
    try:
        return set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):  # no signature to read: keep the old behaviour
        return set()


def short_name(variable: Any) -> str:
    """``"kernel"`` for a variable named ``kernel`` (Keras 3) or ``dense/kernel:0`` (tf_keras)."""
    return variable.name.split("/")[-1].split(":")[0]


class KerasAdapter:
    """Shared logic; subclasses set :attr:`keras` and :attr:`flavour` and parse inbound nodes."""

    flavour = ""
    keras: Any = None
    #: While :meth:`read` runs in graph mode: every weight's value, fetched in one go, by ``id(variable)``.
    _prefetched: dict | None = None
    #: While :meth:`_read_functional` runs: the operations it does not read (:meth:`_implicit`).
    _skipped: frozenset = frozenset()

    # Reading ---------------------------------------------------------------------------------
    def read(self, model) -> Graph:
        """The model as a :class:`Graph` (configs, weights as NumPy copies, connections).

        The weight arrays are read-only snapshots (:func:`snapshot`): copies in effect, without the copying.
        """
        if not isinstance(model, self.keras.Model):
            raise SurgeryError(f"{type(model).__name__} {getattr(model, 'name', '')!r} is a layer, not a model; wrap "
                               "it in a model first (e.g. Sequential([Input(shape), layer]))")
        if isinstance(getattr(model, "_inputs_struct", None), dict) or isinstance(
                getattr(model, "_nested_inputs", None), dict):
            raise SurgeryError(f"model {model.name!r} takes its inputs as a dict; the surgeon works on models whose "
                               "inputs are one tensor or a list. Build it as Model([a, b, ...], outputs) with the "
                               "same layers")
        owner = self._prefetched is None  # a nested model is read within its outer model's read
        if owner:
            self._prefetched = self._fetch_all(model)
        try:
            if isinstance(model, self.keras.Sequential):
                graph = self._read_sequential(model)
            elif getattr(model, "_is_graph_network", None) is False or not hasattr(model, "inputs") or not model.inputs:
                raise SurgeryError(f"model {model.name!r} is a subclassed or unbuilt model with no layer graph; "
                                   "the surgeon works on Functional and built Sequential models")
            else:
                graph = self._read_functional(model)
        finally:
            if owner:
                self._prefetched = None
        graph.unit_ids = get_unit_ids(model)
        _hand_down(graph)
        return graph

    def _nested(self, layer) -> Graph | None:
        """The graph of ``layer`` when it is a Functional or Sequential model used as a layer."""
        if not isinstance(layer, self.keras.Model):
            return None
        try:
            return self.read(layer)
        except SurgeryError:  # a subclassed model: a layer without a rule, copied when nothing reaching it changes
            return None

    def _input_node(self, tensor, name: str) -> Node:
        shape = tuple(tensor.shape)[1:]
        shape = tuple(None if d is None else int(d) for d in shape)
        dtype = getattr(tensor.dtype, "name", tensor.dtype)
        return Node(name, "InputLayer", None, {}, output_shape=shape, is_input=True, dtype=str(dtype))

    def _layer_node(self, layer, inbound: list[str], call_as_list: bool, call_kwargs: dict,
                    output_shape: tuple | None = None) -> Node:
        subgraph = self._nested(layer)
        config = layer.get_config()
        strip = [k for k in _INPUT_SHAPE_KEYS if k in config and k not in _own_arguments(type(layer))]
        config = {k: v for k, v in config.items() if k not in strip}
        weights = [] if subgraph is not None else self.get_weights(layer)  # a nested model's live in its graph
        outputs = []
        if output_shape is None:
            output_shape = self._output_shape_of(layer, config, inbound)
            if isinstance(output_shape, list):  # several outputs: readers go through OUTPUT_OF nodes
                outputs, output_shape = output_shape, output_shape[0]
        return Node(layer.name, type(layer).__name__, type(layer), config, inbound, call_as_list,
                    dict(call_kwargs), weights, output_shape, subgraph=subgraph, outputs=outputs)

    def _call_shape(self, layer, input_shapes: list[tuple], as_list: bool) -> tuple:
        """The output shape of one call of a shared layer (``layer.output`` names only one call)."""
        shapes = [(None,) + tuple(s) for s in input_shapes]
        try:
            out = layer.compute_output_shape(shapes if as_list or len(shapes) > 1 else shapes[0])
        except Exception as e:
            raise SurgeryError(f"layer {layer.name!r} ({type(layer).__name__}) is called several times and cannot "
                               f"say its output shape for inputs {input_shapes}: {e}") from e
        if isinstance(out, (list, tuple)) and out and not isinstance(out[0], (int, type(None))):
            raise SurgeryError(f"layer {layer.name!r} ({type(layer).__name__}) has several outputs; the surgeon "
                               "works on layers with one output")
        out = out.as_list() if hasattr(out, "as_list") else list(out)
        return tuple(None if d is None else int(d) for d in out[1:])

    def _output_shape_of(self, layer, config, inbound) -> tuple | list[tuple]:
        """The per-sample output shape, or for a layer with several outputs a list of them."""
        out = layer.output
        if isinstance(out, (list, tuple)):
            return [tuple(None if d is None else int(d) for d in tuple(o.shape)[1:]) for o in out]
        return tuple(None if d is None else int(d) for d in tuple(out.shape)[1:])

    def _read_sequential(self, model) -> Graph:
        if not getattr(model, "built", True) or not model.inputs:
            raise SurgeryError(f"Sequential model {model.name!r} is not built; give it an Input or call "
                               "model.build(input_shape) first")
        inp = model.inputs[0]
        history = getattr(inp, "_keras_history", None)
        in_name = getattr(history[0], "name", None) if history else None
        in_name = in_name or "input"
        nodes = {in_name: self._input_node(inp, in_name)}
        previous = in_name
        for layer in model.layers:
            nodes[layer.name] = self._layer_node(layer, [previous], False, {})
            previous = layer.name
        return Graph(model.name, nodes, [in_name], [previous], True, self.flavour)

    def _read_functional(self, model) -> Graph:
        config = model.get_config()
        in_names = [self._call_of(model, n, i) for n, i, _ in self._endpoints(config["input_layers"])]
        nodes: dict[str, Node] = {}
        for name, tensor in zip(in_names, model.inputs):
            nodes[name] = self._input_node(tensor, name)
        outer, self._skipped = self._skipped, self._implicit(model)  # a nested model is read within this loop
        try:
            self._read_layers(model, config, nodes)
        finally:
            self._skipped = outer
        out_names = [self._output_ref(model, nodes, *e) for e in self._endpoints(config["output_layers"])]
        return Graph(model.name, _topological(nodes), in_names, out_names, False, self.flavour)

    def _output_ref(self, model, nodes: dict, name: str, node_index: int, tensor_index: int) -> str:
        """The node a reference ``[layer, node_index, tensor_index]`` reads: the layer's node, or for a
        layer with several outputs the :data:`~keras_surgeon_rl.graph.OUTPUT_OF` node of that output."""
        call = self._call_of(model, name, node_index)
        producer = nodes.get(call)
        if producer is None or not producer.outputs:
            if tensor_index != 0:
                raise SurgeryError(f"a layer reads output {tensor_index} of {name!r}, which the surgeon read as a "
                                   "layer with one output")
            return call
        selector = output_node(producer, tensor_index)
        nodes.setdefault(selector.name, selector)
        return selector.name

    def _read_layers(self, model, config: dict, nodes: dict) -> None:
        skipped = self._skipped
        for entry in config["layers"]:
            name = entry.get("name") or entry["config"]["name"]
            if name in nodes or name in skipped:
                continue
            layer = self._operation(model, name)
            calls = entry.get("inbound_nodes", [])
            for k, call in enumerate(calls):  # a shared layer: one node per call (graph.call_name)
                refs, kwargs, as_list, constants = self._parse_inbound(layer, call)
                inbound = [self._output_ref(model, nodes, *r) for r in refs]
                shape = None
                if len(calls) > 1:
                    shape = self._call_shape(layer, [nodes[i].output_shape for i in inbound], as_list)
                node = self._layer_node(layer, inbound, as_list, kwargs, shape) if k == 0 else Node(
                    call_name(name, k), nodes[name].class_name, type(layer), nodes[name].config, inbound, as_list,
                    dict(kwargs), [], shape, shares=name, subgraph=nodes[name].subgraph)
                node.call_constants = constants
                nodes[node.name] = node

    def _implicit(self, model) -> set:
        """Names of operations the framework records but makes again by itself when the model is rebuilt
        (Keras 3: the masks a Masking layer hands on); they are not read as nodes."""
        return set()

    def _operation(self, model, name: str):
        """The layer (or, in Keras 3, the raw ``keras.ops`` operation) called ``name`` in ``model``."""
        return model.get_layer(name)

    @staticmethod
    def _endpoints(value) -> list[tuple[str, int, int]]:
        if value and isinstance(value[0], str):  # a single endpoint: [name, node, tensor]
            value = [value]
        return [(v[0], v[1], v[2] if len(v) > 2 else 0) for v in value]

    def _call_of(self, model, layer_name: str, node_index: int) -> str:
        """The node name of the call a config's ``[layer, node_index, …]`` reference names."""
        if node_index == 0:
            return layer_name
        return call_name(layer_name, node_index - self._first_call(self._operation(model, layer_name)))

    def _first_call(self, layer) -> int:
        """The node index a config gives the layer's first call in the model (tf_keras: see there)."""
        return 0

    def _parse_inbound(self, layer, node_config) -> tuple[list[tuple[str, int, int]], dict, bool, dict]:
        """How ``layer`` is called: the ``(layer name, node index, tensor index)`` of the outputs it reads (in positional order), the other
        keyword arguments, whether it takes its inputs as one list (Concatenate, Add, …) rather
        than as positional arguments (``MultiHeadAttention(query, value)``), and the positional
        arguments that are numbers (``{position: value}``, for ``keras.ops`` calls such as ``x * 2.0``)."""
        raise NotImplementedError

    # The planner's needs -----------------------------------------------------------------------
    def layer_class(self, class_name: str):
        return getattr(self.keras.layers, class_name)

    def output_shape(self, node: Node, input_shapes: list[tuple]) -> tuple:
        fast = self._dense_output_shape(node, input_shapes)
        if fast is not None:
            return fast
        layer = node.layer_class.from_config(dict(node.config))
        shapes = [(None,) + tuple(s) for s in input_shapes]
        try:
            if len(shapes) > 1 and not node.call_as_list:  # several positional inputs: no one convention
                raise NotImplementedError
            if not hasattr(layer, "compute_output_shape") or node.call_constants:  # a keras.ops operation
                raise NotImplementedError
            out = layer.compute_output_shape(shapes if node.call_as_list else shapes[0])
        except NotImplementedError:  # a custom layer: trace a symbolic call instead
            ins = [self.keras.Input(shape=tuple(s)) for s in input_shapes]
            out = layer(*call_args(node, ins)).shape
        if isinstance(out, (list, tuple)) and out and not isinstance(out[0], (int, type(None))):
            out = out[0]  # several outputs (return_state): the first is the node's own shape
        out = out.as_list() if hasattr(out, "as_list") else list(out)
        return tuple(None if d is None else int(d) for d in out[1:])

    def _dense_output_shape(self, node: Node, input_shapes: list[tuple]) -> tuple | None:
        """A resized or rewired Dense layer's output shape without building the layer (a Keras layer
        costs milliseconds to construct, most of a small model's plan). Only for the framework's own
        Dense with a complete config as ``get_config`` writes it (a layer read from a model, not a
        hand-written inserted one, which goes through ``from_config`` to be validated)."""
        if node.class_name != "Dense" or node.call_as_list or len(input_shapes) != 1:
            return None
        if node.layer_class is not self.layer_class("Dense"):
            return None
        keys = type(self).__dict__.get("_dense_keys")
        if keys is None:
            keys = frozenset(self.keras.layers.Dense(1).get_config())
            type(self)._dense_keys = keys
        units, shape = node.config.get("units"), tuple(input_shapes[0])
        if frozenset(node.config) != keys or type(units) is not int or units <= 0 or not shape or shape[-1] is None:
            return None
        if names_foreign_object(node.config):  # a custom activation, initializer…: from_config must find it
            return None
        return shape[:-1] + (units,)

    # Building ----------------------------------------------------------------------------------
    def build(self, graph: Graph, overwritten: dict | None = None):
        """A new model of this flavour from ``graph``, with freshly initialized weights.

        Args:
            graph: the model to build.
            overwritten: per layer name, the names of the weights whose every entry the caller will
                overwrite (a nested model's entry: a dict of its own). Where the layer's initializer
                can be named (:mod:`.overwritten`), those weights start as zeros instead of random
                draws, which saves most of a large model's build; every other weight is drawn from
                its initializer as usual, and the model's config is the same either way. A layer's
                names may be a dict of each to ``value(shape, dtype, drawn)`` (or ``None``): the weight is
                then created holding what that returns, where it returns anything (see
                :class:`.overwritten.Placeholder`).

        Returns:
            The built model.

        Example:
            >>> model = adapter.build(plan.new, {"h1": {"kernel", "bias"}})   # h1 is copied whole
        """
        if not overwritten:
            return self._build(graph, {}, [])
        swaps: list = []
        ok = False
        try:
            model = self._build(graph, overwritten, swaps)
            ok = overwrite_check(swaps, self._shapes)
        finally:
            restore_initializers(swaps)
            if not ok:
                discard_values(swaps)
        return model if ok else self._build(graph, {}, [])

    def _build(self, graph: Graph, overwritten: dict, swaps: list):
        k = self.keras
        inputs = {n: k.Input(shape=graph.nodes[n].output_shape, dtype=graph.nodes[n].dtype, name=n)
                  for n in graph.inputs}
        layers = [n for n in graph.nodes.values() if not n.is_input]
        if graph.sequential and graph.is_chain():
            made = [self._make(n, overwritten, swaps) for n in layers]
            return k.Sequential([inputs[graph.inputs[0]]] + made, name=graph.name)
        tensors = dict(inputs)
        made: dict = {}
        for node in layers:
            if node.selects is not None:  # one output of a layer with several
                tensors[node.name] = tensors[node.inbound[0]][node.selects]
                continue
            if node.layer not in made:  # a shared layer is made once and called once per node
                made[node.layer] = self._make(node, overwritten, swaps)
            layer = made[node.layer]
            args = [tensors[n] for n in node.inbound]
            tensors[node.name] = layer(*call_args(node, args), **node.call_kwargs)
        ins = [tensors[n] for n in graph.inputs]
        outs = [tensors[n] for n in graph.outputs]
        return k.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name=graph.name)

    def _make(self, node: Node, overwritten: dict, swaps: list):
        """A new layer for ``node``: from its config, or, for a nested model, built from its graph."""
        todo = overwritten.get(node.name)
        if node.subgraph is not None:
            return self._build(node.subgraph, todo if isinstance(todo, dict) else {}, swaps)
        layer = node.layer_class.from_config(dict(node.config))
        if todo:  # weight names, or a dict of them to their final values' makers
            swap_initializers(layer, todo, self.keras.initializers.Zeros(), swaps)
        return layer

    def get_weights(self, layer) -> list[tuple[str, np.ndarray]]:
        """``(short name, value)`` per weight of ``layer``: NumPy arrays that nothing else writes to.

        The values are snapshots: later changes to the layer do not reach them (see
        :func:`snapshot`).
        """
        names, variables = self.weight_slots(layer)
        have = self._prefetched or {}
        if variables and all(id(v) in have for v in variables):
            return list(zip(names, (have[id(v)] for v in variables)))
        return list(zip(names, snapshot(layer, variables)))

    def _fetch_all(self, model) -> dict:
        """Every weight's value of ``model`` by ``id(variable)`` where one fetch is cheaper than one per
        layer (graph mode: one session run); empty elsewhere (eager snapshots cost nothing)."""
        return {}

    def _shapes(self, layer) -> list[tuple[str, Any]]:
        """``(short name, variable)`` per weight: what :func:`.overwritten.check` reads (shapes only,
        so nothing is fetched from the framework)."""
        return list(zip(*self.weight_slots(layer)))

    def weight_slots(self, layer) -> tuple[list[str], list]:
        """The short names :meth:`get_weights` gives ``layer``'s weights, and the variables, unread.

        Args:
            layer: a layer (or a weightless ``keras.ops`` operation).

        Returns:
            ``(names, variables)`` in ``layer.weights`` order.
        """
        variables = list(getattr(layer, "weights", ()))  # a keras.ops operation has none
        names = [short_name(v) for v in variables]
        # a weight created without a name is numbered by a process-wide counter ('variable_12'), so the
        # same weight has another name in the new layer: it is known by its position instead
        names = [f"variable#{i}" if _AUTO_NAME.fullmatch(n) else n for i, n in enumerate(names)]
        dup = {n for n, c in Counter(names).items() if c > 1}
        names = [f"{n}#{i}" if n in dup else n for i, n in enumerate(names)]
        return names, variables

    def set_weights(self, layer, arrays: list[np.ndarray]) -> None:
        layer.set_weights(arrays)
        self.finish(layer)

    def set_many(self, pairs: list) -> None:
        """:meth:`set_weights` for each ``(layer, arrays)`` in ``pairs``, in order."""
        for layer, arrays in pairs:
            self.set_weights(layer, arrays)

    def adopt(self, array: np.ndarray):
        """A tensor that holds ``array``'s memory, not a copy of it, for a new variable to be created
        holding (a variable made from a tensor shares its buffer); ``None`` where the framework cannot.

        Only in eager TensorFlow; ``array`` must be C-contiguous and aligned as TensorFlow aligns its
        own buffers (:func:`aligned_empty`), and nothing may write to it afterwards.

        Args:
            array: the value, made for this purpose only.

        Returns:
            The tensor, or ``None``.

        Example:
            >>> out = aligned_empty((3920, 512), np.dtype("float32"))
            >>> tensor = adapter.adopt(out)      # what a layer's initializer may return
        """
        return adopt(array)

    def defers_writes(self) -> bool:
        """Whether :meth:`set_many` is cheaper than one :meth:`set_weights` per layer (graph mode)."""
        return False

    def finish(self, layer) -> None:
        """What a layer needs once its weights are written (after :meth:`set_weights`, or in place)."""
        if callable(getattr(layer, "finalize_state", None)):
            layer.finalize_state()  # Keras 3's Normalization derives its mean/variance from the weights here


def call_args(node: Node, tensors: list) -> list:
    """The positional arguments of the node's call: its tensors (as one list, or one per position),
    with its constants at their positions."""
    if node.call_as_list:
        return [tensors]
    args, it = [], iter(tensors)
    for pos in range(len(tensors) + len(node.call_constants)):
        args.append(node.call_constants[pos] if pos in node.call_constants else next(it))
    return args


def snapshot(layer, variables: list | None = None) -> list[np.ndarray]:
    """The values of ``layer.weights`` as NumPy arrays that keep the values of this moment.

    In eager TensorFlow a variable's value is an immutable tensor, and TensorFlow copies a
    variable's buffer before writing to it while a tensor still holds the old one (copy on write):
    a read-only NumPy view of that tensor is a snapshot that costs no copy and no memory. Where that
    is not available (graph mode, as under keras-rl2; other Keras backends), the framework's
    ``get_weights`` arrays are used, copied when they share memory with the framework.
    """
    variables = list(layer.weights) if variables is None else variables
    views = [_tensor_view(v) for v in variables]
    if all(v is not None for v in views):
        return views
    return [w if w.flags.owndata else np.array(w, copy=True) for w in (np.asarray(a) for a in layer.get_weights())]


#: Bytes TensorFlow aligns its CPU buffers to (Eigen's widest vector loads assume it).
TF_ALIGN = 64


def aligned_empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a :data:`TF_ALIGN` boundary.

    Args:
        shape: its shape.
        dtype: its NumPy dtype.

    Returns:
        The array (a view into a slightly larger byte buffer).

    Example:
        >>> aligned_empty((4, 3), np.dtype("float32")).ctypes.data % TF_ALIGN
        0
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + TF_ALIGN, np.uint8)
    start = (-raw.ctypes.data) % TF_ALIGN
    return raw[start:start + n].view(dtype).reshape(shape)


def adopt(array: np.ndarray):
    """An eager TensorFlow tensor over ``array``'s memory (through DLPack, no copy), or ``None``
    (no TensorFlow, graph mode, an unaligned array, or a dtype DLPack does not carry).

    Args:
        array: a C-contiguous, writable, :data:`TF_ALIGN`-aligned array nothing else will write to.

    Returns:
        The tensor, or ``None``.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None or not tf.executing_eagerly() or array.size == 0 or array.ctypes.data % TF_ALIGN:
        return None
    try:
        tensor = tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        view = np.asarray(memoryview(tensor))
    except Exception:  # an old NumPy or TensorFlow, or a dtype DLPack does not carry
        return None
    if view.ctypes.data != array.ctypes.data or view.shape != array.shape or view.dtype != array.dtype:
        return None
    return tensor


def _tensor_view(variable) -> np.ndarray | None:
    """A read-only, zero-copy view of an eager TensorFlow variable's current value, or ``None``."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not tf.executing_eagerly():  # graph mode: reading would add ops to the graph
        return None
    try:
        value = variable.value  # tf_keras / tf.Variable: a method; Keras 3 (TF backend): the tf.Variable
        tensor = value() if callable(value) else value.value()
        if not hasattr(tensor, "_numpy"):  # not an eager tensor
            return None
        array = np.asarray(memoryview(tensor))
        if array.shape != tuple(int(d) for d in variable.shape) or array.dtype.kind not in "fciub":
            return None
    except Exception:  # another backend or variable type: the caller falls back to get_weights
        return None
    return array


def _hand_down(graph: Graph) -> None:
    """Give each nested model's graph the unit IDs the outer model carries for its layers (IDs are
    kept by layer name, in one flat dict for the model and every model nested in it)."""
    for node in graph.nodes.values():
        sub = node.subgraph
        if sub is None or node.shares is not None:
            continue
        for name, ids in graph.unit_ids["layers"].items():
            if name not in graph.nodes and sub.find(name):
                sub.unit_ids["layers"][name] = ids
        _hand_down(sub)


def _topological(nodes: dict[str, Node]) -> dict[str, Node]:
    """Nodes in an order where every node comes after the nodes it reads (stable otherwise)."""
    done: dict[str, Node] = {}
    pending = list(nodes.values())
    while pending:
        rest = [n for n in pending if not all(i in done for i in n.inbound)]
        ready = [n for n in pending if all(i in done for i in n.inbound)]
        if not ready:
            missing = {i for n in rest for i in n.inbound if i not in nodes}
            raise SurgeryError(f"cannot order the model's layers; unknown inbound layers {sorted(missing)}")
        for n in ready:
            done[n.name] = n
        pending = rest
    return done
