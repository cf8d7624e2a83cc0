"""The public surgery API: ``plan``, ``transplant``, ``transplant_weights`` and ``verify``.

Example:
    >>> from keras_surgeon_rl import surgeon
    >>> spec = {"inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]}}
    >>> print(surgeon.plan(model, spec))          # dry run: what is copied, initialized, dropped
    >>> new_model = surgeon.transplant(model, spec)
    >>> surgeon.verify(model, new_model, spec)    # largest output difference on shared outputs
    0.0
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from keras_surgeon_rl.adapters import adapter_for
from keras_surgeon_rl.adapters.base import aligned_empty
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.infer import infer_spec
from keras_surgeon_rl.planner import LayerPlan, Plan, make_plan
from keras_surgeon_rl.report import Report
from keras_surgeon_rl.unit_ids import set_unit_ids
from keras_surgeon_rl.weights import Copy, Fresh, Generated, LayerStats

logger = logging.getLogger(__name__)

#: Graph mode writes many layers in one session run; at most this many bytes of new arrays wait for it.
DEFERRED_BYTES = 64 * 2 ** 20


def plan(old_model, spec) -> Plan:
    """Validate ``spec`` against ``old_model`` and plan the surgery, without building anything.

    Args:
        old_model: a built Functional or Sequential model (Keras 3 or tf_keras).
        spec: the surgery spec (a dict, see :mod:`keras_surgeon_rl.spec`, or a ``Spec``).

    Returns:
        The :class:`~keras_surgeon_rl.planner.Plan`; ``print(plan)`` shows, per layer, what will be
        copied, newly initialized and dropped.

    Raises:
        SurgeryError: the spec does not fit the model; the message names the layer and the fix.
    """
    adapter = adapter_for(old_model)
    return make_plan(adapter.read(old_model), spec, adapter)


def transplant(old_model, spec):
    """Build the changed model and copy every compatible weight into it.

    Args:
        old_model: a built Functional or Sequential model (Keras 3 or tf_keras); never modified.
        spec: the surgery spec.

    Returns:
        A new model of the same flavour (Sequential stays Sequential when the result is a chain).
        It shares no layer or weight with ``old_model``. Its ``surgery_report`` attribute holds
        the per-layer :class:`~keras_surgeon_rl.report.Report`, and it carries the unit IDs of its
        inputs and layers (:func:`keras_surgeon_rl.unit_ids.get_unit_ids`), so a later spec can omit
        ``old``.

    Example:
        >>> new = transplant(model, {"units": {"hidden": 32}})
        >>> print(new.surgery_report)
    """
    adapter = adapter_for(old_model)
    return transplant_planned(old_model, make_plan(adapter.read(old_model), spec, adapter))


def transplant_planned(old_model, p: Plan):
    """:func:`transplant` from a plan :func:`plan` already made for ``old_model`` (the CLI shows the
    plan first), without planning again.

    Args:
        old_model: the model the plan was made for; never modified.
        p: its plan, as :func:`plan` returned it.

    Returns:
        The new model, as :func:`transplant` returns it.

    Example:
        >>> p = plan(model, spec)
        >>> new = transplant_planned(model, p)
    """
    adapter = adapter_for(old_model)
    new_model, finals = build_planned(p, adapter)
    _fill(p, adapter, new_model, strict=True, finals=finals)
    set_unit_ids(new_model, inputs=p.new.unit_ids["inputs"], layers=p.new.unit_ids["layers"], replace=True)
    new_model.surgery_report = p.report
    logger.info("surgery on %r: %s parameters copied, %s initialized, %s dropped", old_model.name,
                p.report.totals.copied, p.report.totals.initialized, p.report.totals.dropped)
    return new_model


def transplant_weights(old_model, new_model, spec) -> Report:
    """Copy weights into a model the user built: layers matched by name, units by the spec's IDs.

    A hidden Dense or Conv layer that the user built wider or narrower, and that the spec does not
    mention, is inferred (:mod:`keras_surgeon_rl.infer`): its units keep their IDs, extra units are
    new (the spec's ``init``), missing ones are the last. Its report row says so. A model input or
    output layer of another size is inferred only from unit IDs ``new_model`` carries; otherwise
    the spec must say which units are which.

    Args:
        old_model: the trained model (never modified).
        new_model: the new architecture, built; its weights are overwritten in place where the plan
            maps them. Layers the plan does not know keep their values.
        spec: the spec that describes how ``new_model`` differs from ``old_model`` (hidden layers
            resized by hand may be left out).

    Returns:
        The per-layer report.

    Raises:
        SurgeryError: a planned layer is missing from ``new_model`` or has other weight shapes, or an
            input or output layer changed size and the spec does not say how; nothing is written then.

    Example:
        >>> new = build_net(hidden=96)                       # the old one had 64
        >>> report = transplant_weights(old, new, {})
        >>> report.notes
        ["h0: new model has 96 units, old 64 — kept IDs 0..63, 32 new (inferred: the spec does not mention it)"]
    """
    adapter = adapter_for(old_model)
    if adapter_for(new_model).flavour != adapter.flavour:
        raise SurgeryError(f"old model is {adapter.flavour} but new model is {adapter_for(new_model).flavour}; "
                           "use transplant() to rebuild in the old model's flavour")
    old_graph = adapter.read(old_model)
    spec, inferred = infer_spec(old_graph, adapter.read(new_model), spec)
    try:
        p = make_plan(old_graph, spec, adapter)
    except SurgeryError as e:
        if not inferred:
            raise
        told = "; ".join(f"{name}: {note}" for name, note in inferred.items())
        raise SurgeryError(f"{e} [the spec was completed from the new model: {told}]") from e
    for name, note in inferred.items():
        p.report.row(name).notes.append(note)
    _fill(p, adapter, new_model, strict=False)
    return p.report


def overwritten(p: Plan, finals: dict | None = None, adopt=None) -> dict:
    """Per layer name, the weights whose every entry ``transplant`` overwrites from the plan (a nested
    model's entry: a dict of its own): the build need not draw random values for them.

    Args:
        p: the plan.
        finals: optional dict that gets, per ``id(layer plan)``, a :class:`_Final` per such weight
            (the maker of its final value), and per weight copied in part (its new entries keep the
            initializer's draws) one that makes it from the draw; the layer's entry is then that
            dict of them.
        adopt: with ``finals``, the adapter's :meth:`~keras_surgeon_rl.adapters.base.KerasAdapter.adopt`.

    Returns:
        ``{layer name: {weight name, ...} or {nested layer name: ...}}``, without layers that have none.

    Example:
        >>> overwritten(plan)
        {'c1': {'bias', 'kernel'}, 'fc': {'bias', 'kernel'}}
    """
    out: dict = {}
    for name, lp in p.layers.items():
        if lp.sub is not None:
            sub = overwritten(lp.sub, finals, adopt)
            if sub:
                out[name] = sub
            continue
        old = dict(lp.old.weights) if lp.old is not None else {}  # an inserted layer has none
        # the same test _write_layer uses to skip reading a weight's initial value
        full = {w for w, m in lp.maps.items() if not _reads_fresh(m) and (not isinstance(m, Copy) or m.source in old)}
        if finals is not None:  # and the copies that keep some drawn entries: made from the draw at build
            part = {w for w, m in lp.maps.items() if isinstance(m, Copy) and _reads_fresh(m) and m.source in old}
            full = {w: _Final(lp, w, adopt, draws=w in part) for w in sorted(full | part)}
            if full:
                finals[id(lp)] = full
        if full:
            out[name] = full
    return out


def build_planned(p: Plan, adapter) -> tuple[Any, dict]:
    """The new model of plan ``p``, with the weights it copies created holding their final values where
    the framework allows (eager TensorFlow); elsewhere those it overwrites whole start as zeros and the
    others as drawn (see :func:`overwritten`).

    Args:
        p: the plan.
        adapter: the old model's adapter.

    Returns:
        ``(model, finals)``: ``finals`` for :func:`_fill`, which writes only the weights that do not
        hold their final values yet.

    Example:
        >>> new, finals = build_planned(p, adapter)
        >>> _fill(p, adapter, new, strict=True, finals=finals)
    """
    if adapter.adopt(aligned_empty((1,), np.dtype("float32"))) is None:  # graph mode, another backend
        return adapter.build(p.new, overwritten(p)), {}                     # (no final value is made)
    finals: dict = {}
    return adapter.build(p.new, overwritten(p, finals, adapter.adopt)), finals


class _Final:
    """The final value of one weight, made when the build asks for it: written once into a new
    aligned array that TensorFlow then holds without copying, so the variable is created holding it
    (no zeros tensor, no ``assign``, no conversion copy). A weight copied whole is made from the plan
    alone; one copied in part (``draws``) from the initializer's draw too, which the build makes as
    it would have (same initializer, same order), so its new entries are what they were."""

    def __init__(self, lp: LayerPlan, weight: str, adopt, draws: bool = False):
        self.lp, self.weight, self._adopt, self.draws = lp, weight, adopt, draws
        self.array: np.ndarray | None = None  # the value given to the build, until discarded

    def __call__(self, shape: tuple, dtype, drawn=None):
        m = self.lp.maps[self.weight]
        dtype = _dtype_of(dtype)
        if dtype is None or self.array is not None or not isinstance(m, (Copy, Generated)):
            return None
        src = None
        if isinstance(m, Copy):  # a shape the plan does not expect: the fill's checks say so later
            src = dict(self.lp.old.weights)[m.source]
            if tuple(shape) != tuple(len(a.src) if a is not None else d for a, d in zip(m.axes, src.shape)):
                return None
        fresh = _placeholder(shape, dtype)
        if self.draws:
            fresh = _array_of(drawn)
            if fresh is None or fresh.shape != tuple(shape) or fresh.dtype != dtype:
                return None
        out = aligned_empty(shape, dtype)
        m.apply(src, fresh, out=out)
        del fresh
        tensor = self._adopt(out)
        if tensor is not None:
            self.array = out
        return tensor

    def discard(self) -> None:
        """The model built with this value was thrown away (see :func:`.overwritten.discard`)."""
        self.array = None

    def holds(self) -> bool:
        """Whether the weight was created holding its final value (the build used it and kept the model).

        The variable holds that array's memory itself where TensorFlow shares it (see
        :meth:`~keras_surgeon_rl.adapters.base.KerasAdapter.adopt`), else a copy: its value either way.
        """
        return self.array is not None


def _array_of(value) -> np.ndarray | None:
    """A NumPy view (else copy) of an initializer's result (an eager tensor, an array), or ``None``."""
    if value is None:
        return None
    try:
        return np.asarray(memoryview(value))  # an eager tensor's buffer, not copied
    except TypeError:
        pass
    try:
        return np.asarray(value)
    except Exception:  # a graph tensor
        return None


def _dtype_of(dtype) -> np.dtype | None:
    """The NumPy dtype of an initializer's ``dtype`` argument or a variable's ``dtype`` (a name in Keras 3,
    a ``tf.DType`` in tf_keras), or ``None`` (none given, or bfloat16 and the like: NumPy has no name
    for it)."""
    if dtype is None:
        return None
    try:
        return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
    except TypeError:
        return None


def _fill(p: Plan, adapter, new_model, strict: bool, finals: dict | None = None) -> None:
    """Set every planned layer's weights; into a user's model (not ``strict``) only once all are made and
    checked. ``finals`` (from :func:`build_planned`): weights whose variables already hold their final
    values are not written."""
    todo: list = []
    _fill_layers(p, adapter, new_model, strict, todo, finals or {})
    adapter.set_many(todo)


def _fill_layers(p: Plan, adapter, new_model, strict: bool, todo: list, finals: dict) -> None:
    names = {layer.name for layer in new_model.layers}
    for lp in p.layers.values():
        if lp.node.name not in names and not lp.maps and (lp.old is None or not lp.old.weights):
            continue  # a weightless keras.ops operation: nothing to fill
        if lp.node.name not in names:
            if strict:
                raise AssertionError(f"built model lacks planned layer {lp.node.name!r}")
            raise SurgeryError(f"the new model has no layer {lp.node.name!r}, which the plan needs; name the "
                               "new model's layers as in the old one (or as the spec's 'insert' names them)")
        layer = new_model.get_layer(lp.node.name)
        if not strict and type(layer).__name__ != lp.node.class_name:
            raise SurgeryError(f"layer {lp.node.name!r} is a {type(layer).__name__} in the new model, but the plan "
                               f"makes it a {lp.node.class_name}; layers are matched by name, so build it as a "
                               f"{lp.node.class_name} or give the new layer another name")
        if lp.sub is not None:  # a nested model: filled from its own plan
            _fill_layers(lp.sub, adapter, layer, strict, todo, finals)
            continue
        if lp.old is None:  # inserted: the plan now knows the sizes
            stats = LayerStats()
            for v in adapter.weight_slots(layer)[1]:
                stats.add((0, int(np.prod(tuple(v.shape), dtype=np.int64)), 0))
            lp.report.stats = stats
        if strict:  # a model built from the plan: its shapes fit, and memory stays one layer's arrays
            _write_layer(lp, adapter, layer, todo, finals.get(id(lp), {}))
            if sum(a.nbytes for _, arrays in todo for a in arrays) > DEFERRED_BYTES:
                adapter.set_many(todo)
                todo.clear()
        else:  # the user's model: a shape error after the first layer must not leave it half-written
            todo.append((layer, _layer_arrays(lp, adapter.get_weights(layer))))


def _reads_fresh(m) -> bool:
    """Whether map ``m`` reads the new layer's initial value (else a shape-only placeholder will do)."""
    if isinstance(m, Fresh):
        return True
    done = getattr(m, "overwrites_all", None)
    return not (callable(done) and done())


def _placeholder(shape: tuple, dtype) -> np.ndarray:
    """A read-only array of ``shape`` and ``dtype`` that takes no memory, for a map that reads only those."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def _write_layer(lp: LayerPlan, adapter, layer, todo: list, finals: dict | None = None) -> None:
    """Make a newly built layer's weights from the plan and write them, with as few full-size copies
    as the framework allows.

    A weight whose every entry is overwritten is never read (a shape-only placeholder stands for its
    initial value); one that keeps its initial value (:class:`Fresh`) goes back as the snapshot it is,
    uncopied. The snapshots of the initial values are dropped before the write, so the variables'
    buffers are no longer shared and TensorFlow writes into them in place. Each weight is written
    whole with ``assign``: writing a TensorFlow variable in slices (strided-slice assign, scatter)
    switches it to copy-on-read for good, and every later read of it (each forward pass) would copy it.
    Where writes are cheaper together (graph mode: one session run for many layers) they are appended
    to ``todo``. A weight whose variable was created holding its final value (``finals``: its
    :class:`_Final` per weight name, see :func:`build_planned`) is not made again: a layer of only
    such weights and ones that keep their initial values is not written at all, and in a layer with
    others it goes back as its snapshot.
    """
    names, variables = adapter.weight_slots(layer)
    held = [n in (finals or {}) and finals[n].holds() for n in names]
    shapes = [tuple(int(d) for d in v.shape) for v in variables]
    dtypes = [_dtype_of(v.dtype) for v in variables]
    maps = _layer_maps(lp, list(zip(names, shapes)))
    if any(held) and all(h or isinstance(m, Fresh) for h, (m, _) in zip(held, maps)):
        adapter.finish(layer)  # every weight holds its final value, or keeps its initial one
        return
    need = any(_reads_fresh(m) for m, _ in maps) or None in dtypes or any(held)
    fresh = [f for _, f in adapter.get_weights(layer)] if need else [None] * len(maps)
    arrays = []
    for (m, src), f, shape, dtype, h in zip(maps, fresh, shapes, dtypes, held):
        if (h or isinstance(m, Fresh)) and f is not None:
            arrays.append(f)  # its own value (initial or final), written back unchanged: no copy needed
            continue
        arrays.append(m.apply(src, f if f is not None and _reads_fresh(m) else _placeholder(shape, dtype)))
    del fresh  # the variables' buffers are then unshared, and are written in place
    if adapter.defers_writes():
        todo.append((layer, arrays))
    else:
        adapter.set_weights(layer, arrays)


def _layer_arrays(lp: LayerPlan, fresh: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """The new arrays of a layer from its initial values ``fresh`` (``(name, array)`` per weight)."""
    maps = _layer_maps(lp, [(name, tuple(f.shape)) for name, f in fresh])
    return [m.apply(src, f) for (m, src), (_, f) in zip(maps, fresh)]


def _layer_maps(lp: LayerPlan, slots: list[tuple[str, tuple]]) -> list[tuple[Any, np.ndarray | None]]:
    """``(map, old array or None)`` per new weight (``(name, shape)`` in ``slots``), checked against the plan."""
    old = dict(lp.old.weights) if lp.old is not None else {}
    out = []
    for name, shape in slots:
        m = lp.maps.get(name)
        if m is None:
            if lp.old is not None and name in old:
                raise SurgeryError(f"layer {lp.node.name!r}: its rule gives no mapping for weight {name!r}")
            if lp.old is not None and old:  # never leave a learned layer's weight at its initial value unsaid
                raise SurgeryError(f"layer {lp.node.name!r}: the new layer has a weight {name!r} that the old layer "
                                   f"does not have (it has {', '.join(old)}), so the surgeon cannot tell which old "
                                   "weight it is; name the layer's weights (add_weight(name=...)) or register a rule "
                                   "for it")
            m = Fresh()
        if isinstance(m, Copy):
            src = old[m.source]
            expected = tuple(len(a.src) if a is not None else d for a, d in zip(m.axes, src.shape))
            if tuple(shape) != expected:
                raise SurgeryError(f"layer {lp.node.name!r}: weight {name!r} has shape {tuple(shape)} in the "
                                   f"new model, but the spec implies {expected}; build the new model as the spec "
                                   "describes (see surgeon.plan)")
            out.append((m, src))
        else:
            out.append((m, None))
    return out


def _old_inputs(p: Plan, x: Any, n: Any, rng: np.random.Generator) -> list[np.ndarray]:
    """The old model's inputs for :func:`verify`: ``x`` checked against the old input shapes, or ``n``
    random normal samples."""
    names = list(p.old.inputs)
    shapes = [tuple(p.old.nodes[i].output_shape) for i in names]
    if x is None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SurgeryError(f"verify n: {n!r} random samples; give at least 1 (or pass x)")
        if any(d is None for s in shapes for d in s):
            raise SurgeryError(f"verify: the model's inputs have unknown sizes {shapes}; pass x")
        return [rng.standard_normal((int(n),) + s).astype("float32") for s in shapes]
    if isinstance(x, dict):
        missing = [i for i in names if i not in x]
        if missing:
            raise SurgeryError(f"verify x: no array for input {missing[0]!r}; the dict's keys must be the model's "
                               f"input names ({', '.join(names)})")
        given = [x[i] for i in names]
    elif isinstance(x, (list, tuple)):
        if len(x) != len(names):
            raise SurgeryError(f"verify x: expected {len(names)} arrays, got {len(x)}; pass one per model input "
                               f"({', '.join(names)})")
        given = list(x)
    elif len(names) != 1:
        raise SurgeryError(f"verify x: the model has {len(names)} inputs; pass a list or a dict by input name")
    else:
        given = [x]
    out = []
    for name, shape, a in zip(names, shapes, given):
        a = np.asarray(a)
        if a.dtype.kind not in "biuf":
            raise SurgeryError(f"verify x: input {name!r} is not numeric (dtype {a.dtype}); pass numbers")
        ok = a.ndim == len(shape) + 1 and all(w is None or w == d for w, d in zip(shape, a.shape[1:]))
        if not ok or a.shape[0] == 0:
            raise SurgeryError(f"verify x: input {name!r} has shape {a.shape}, but the old model takes "
                               f"(n, {', '.join(str(d) for d in shape)}) with n ≥ 1")
        a = a.astype("float32")
        if not np.isfinite(a).all():
            raise SurgeryError(f"verify x: input {name!r} holds NaN or infinite values; outputs on them cannot be "
                               "compared")
        out.append(a)
    return out


def _as_list(out) -> list[np.ndarray]:
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _predict(model, xs: list, batch: int = 32) -> list[np.ndarray]:
    """The model's outputs on ``xs``, in inference mode.

    A model is called directly, ``batch`` samples at a time (no graph to trace: a small model
    answers in milliseconds), except a model with channels-first layers, which goes through
    ``predict``: TensorFlow's CPU kernels run some channels-first operations only in a rewritten
    graph, and were seen to give wrong numbers when called eagerly.
    """
    x = xs if len(xs) > 1 else xs[0]
    if "channels_first" not in repr(model.get_config()):
        try:
            parts = [_as_list(model([a[i:i + batch] for a in xs] if len(xs) > 1 else x[i:i + batch], training=False))
                     for i in range(0, len(xs[0]), batch)]
            return [np.concatenate(p) for p in zip(*parts)]
        except Exception:  # noqa: BLE001 - a model that cannot be called directly: predict decides
            pass
    return _as_list(model.predict(x, verbose=0))


def verify(old_model, new_model, spec, x: Any = None, n: int = 256, seed: int = 0) -> float:
    """The largest absolute difference between old and new outputs over the output units both have.

    The new model's inputs hold ``x``'s features at their IDs and random values for new features.

    Args:
        old_model: the old model.
        new_model: the new model (from :func:`transplant`, or built by hand and filled by
            :func:`transplant_weights`).
        spec: the spec relating the two.
        x: inputs of the old model (an array, or a list/dict per input); ``n`` random normal
            samples when omitted.
        n: number of random samples when ``x`` is omitted.
        seed: seed of the random inputs.

    Returns:
        ``max |old(x_old)[u] - new(x_new)[u]|`` over samples and shared output units ``u``; NaN
        when either model gives a NaN or infinite output there (so ``verify(...) <= tol`` fails).

    Raises:
        SurgeryError: the models share no output unit.
    """
    p = plan(old_model, spec)
    rng = np.random.default_rng(seed)
    names = list(p.old.inputs)
    xs = _old_inputs(p, x, n, rng)
    new_xs = []
    for name, xo in zip(names, xs):
        t = p.inputs[name]
        if not t.changed:  # the same input (its shape may hold unknown sizes: a sequence's length)
            new_xs.append(xo)
            continue
        idx = index_of(t.old_ids, t.ids)
        shape = tuple(xo.shape[k + 1] if d is None else d for k, d in enumerate(t.shape))  # x's sequence length
        xn = rng.standard_normal((xo.shape[0],) + shape).astype("float32")
        ax = t.axis + 1
        have = np.flatnonzero(idx >= 0)
        dst = [slice(None)] * xn.ndim
        dst[ax] = have
        xn[tuple(dst)] = np.take(xo, idx[have], axis=ax)
        new_xs.append(xn)
    got = [tuple(t.shape)[1:] for t in new_model.inputs]
    want = [p.inputs[n].shape for n in names]
    if [tuple(None if d is None else int(d) for d in g) for g in got] != [tuple(w) for w in want]:
        raise SurgeryError(f"the new model's inputs have shapes {got}, but the spec gives {want}; pass the model "
                           "that this spec made (or the spec that made this model)")
    old_out, new_out = _predict(old_model, xs), _predict(new_model, new_xs)
    worst, shared_any = 0.0, False
    for t, yo, yn in zip(p.outputs, old_out, new_out):
        idx = index_of(t.old_ids, t.ids)
        have = np.flatnonzero(idx >= 0)
        if have.size == 0:
            continue
        shared_any = True
        ax = t.axis + 1
        diff = np.abs(np.take(yo, idx[have], axis=ax) - np.take(yn, have, axis=ax))
        if not np.isfinite(diff).all():  # NaN or inf outputs: not "no difference"
            return float("nan")
        worst = max(worst, float(diff.max()))
    if not shared_any:
        raise SurgeryError("the old and new models share no output unit, so there is nothing to compare; "
                           "verify compares outputs whose IDs appear in both")
    return worst
