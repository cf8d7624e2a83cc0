"""Deleting channels, keras-surgeon style: every kind of layer downstream takes the change exactly.

Like keras-surgeon's ``test_delete_channels_*`` tests (BenWhetton/keras-surgeon, tests/test_surgeon.py),
but comparing outputs, not configs: channels 1 and 4 of a producer layer ``p`` (6 channels) are
deleted with ``units``, and the new model must compute what the old one computes with those channels
silenced. The reference is a copy of the old model in which the deleted channels contribute nothing:
their incoming weights and bias in ``p`` are zeroed (``p``'s activation maps 0 to 0), and so are
the per-channel weights of layers on the way that would turn a zero channel into a non-zero one
(BatchNormalization's beta, a DepthwiseConv's bias). Every layer between ``p`` and the layer that
reads the channels maps zeros to zeros, so each weight reading a deleted channel reads zero, as if
it were zeroed itself.

Each case runs in both data formats where its layers have one, in Keras 3 and tf_keras. TensorFlow's
CPU kernels lack some channels-first operations (NCHW convolutions and pooling): such a combination
is skipped when the old model itself cannot predict.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize

TOL = 1e-5
KEEP = [0, 2, 3, 5]  # of 6 channels: 1 and 4 are deleted
DELETED = [1, 4]
LAST = ("channels_last",)  # layers without a data_format of their own (or without a channels-first form)


@dataclass
class Case:
    """A model as ``p -> body -> head -> q``; ``body(L, x, fmt)`` gives the layers under test.

    Attributes:
        rank: spatial rank of the data (0: flat features, produced by a Dense).
        body: the layers under test, from ``p``'s output (and ``p2``'s, with ``second_branch``).
        formats: the data formats to run (channels-last only for layers without a data_format).
        head: ``"gap"`` (global average pooling), ``"gap1"`` (1-D global average pooling) or
            ``"dense"`` (none: the data is flat already); then Flatten if needed, and the Dense ``q``.
        also: other layers whose units change like ``p``'s (the second branch of an Add).
        zero: ``c -> {layer: [(weight index, axis, indices)]}``: more weights to zero for a deleted
            channel ``c`` (those that would turn a zero channel into a non-zero one).
        second_branch: ``body`` also reads ``p2``, a second layer reading the input.
    """

    rank: int
    body: Callable
    formats: tuple = ("channels_last", "channels_first")
    head: str = "gap"
    also: tuple = ()
    zero: Callable = None
    second_branch: bool = False


def _cf(fmt):
    return {"data_format": fmt}


def _conv(L, rank):
    return {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]


def _chan(fmt, rank):
    """The channel axis of data of spatial ``rank`` in ``fmt``, counting the batch axis."""
    return 1 if fmt == "channels_first" else rank + 1


CASES = {
    # layers that read the channels: their kernel's input axis follows the channels
    "conv1d": Case(1, lambda L, x, f: L.Conv1D(5, 3, padding="same", name="c", **_cf(f))(x)),
    "conv2d": Case(2, lambda L, x, f: L.Conv2D(5, 3, padding="same", name="c", **_cf(f))(x)),
    "conv3d": Case(3, lambda L, x, f: L.Conv3D(5, 2, padding="same", name="c", **_cf(f))(x)),
    "dense_on_dense": Case(0, lambda L, x, f: L.Dense(5, activation="tanh", name="c")(x),
                           formats=LAST, head="dense"),
    "dense_on_conv": Case(2, lambda L, x, f: L.Dense(5, name="c")(x), formats=LAST),
    "depthwise2d": Case(2, lambda L, x, f: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw",
                                                           **_cf(f))(x),
                        zero=lambda c: {"dw": [(1, 0, [2 * c, 2 * c + 1])]}),
    # layers that rearrange
    "flatten": Case(2, lambda L, x, f: L.Flatten(name="flatten", **_cf(f))(x), head="dense"),
    "flatten_plain": Case(2, lambda L, x, f: L.Flatten(name="flatten")(x), head="dense"),
    "reshape_merge_space": Case(2, lambda L, x, f: L.Reshape((36, 6) if f == "channels_last" else (6, 36),
                                                             name="rs")(x), head="gap1"),
    "reshape_flat": Case(2, lambda L, x, f: L.Reshape((-1,), name="rs")(x), head="dense"),
    "reshape_squeeze_excite": Case(2, lambda L, x, f: L.Conv2D(4, 1, name="c", **_cf(f))(L.Reshape(
        (1, 1, 6) if f == "channels_last" else (6, 1, 1), name="rs")(L.GlobalAveragePooling2D(name="g", **_cf(f))(x)))),
    "permute_hw": Case(2, lambda L, x, f: L.Permute((2, 1, 3) if f == "channels_last" else (1, 3, 2),
                                                    name="perm")(x)),
    # pooling
    "maxpool1d": Case(1, lambda L, x, f: L.MaxPooling1D(2, name="pool", **_cf(f))(x)),
    "maxpool2d": Case(2, lambda L, x, f: L.MaxPooling2D(2, name="pool", **_cf(f))(x)),
    "avgpool2d": Case(2, lambda L, x, f: L.AveragePooling2D(2, name="pool", **_cf(f))(x)),
    "avgpool3d": Case(3, lambda L, x, f: L.AveragePooling3D(2, name="pool", **_cf(f))(x)),
    "globalmax2d": Case(2, lambda L, x, f: L.GlobalMaxPooling2D(name="pool", **_cf(f))(x), head="dense"),
    "globalavg1d": Case(1, lambda L, x, f: L.GlobalAveragePooling1D(name="pool", **_cf(f))(x), head="dense"),
    # cropping, padding, upsampling
    "cropping1d": Case(1, lambda L, x, f: L.Cropping1D(1, name="crop")(x), formats=LAST),
    "cropping2d": Case(2, lambda L, x, f: L.Cropping2D(((1, 0), (0, 2)), name="crop", **_cf(f))(x)),
    "zeropadding2d": Case(2, lambda L, x, f: L.ZeroPadding2D(1, name="pad", **_cf(f))(x)),
    "zeropadding3d": Case(3, lambda L, x, f: L.ZeroPadding3D(1, name="pad", **_cf(f))(x)),
    "upsampling1d": Case(1, lambda L, x, f: L.UpSampling1D(2, name="up")(x), formats=LAST),
    "upsampling2d": Case(2, lambda L, x, f: L.UpSampling2D(2, name="up", **_cf(f))(x)),
    # per-channel layers
    "batchnorm": Case(2, lambda L, x, f: L.BatchNormalization(axis=_chan(f, 2), name="bn")(x),
                      zero=lambda c: {"bn": [(0, 0, [c]), (1, 0, [c])]}),
    "activation": Case(2, lambda L, x, f: L.Activation("tanh", name="act")(x), formats=LAST),
    "relu": Case(2, lambda L, x, f: L.ReLU(max_value=2.0, name="act")(x), formats=LAST),
    "prelu": Case(2, lambda L, x, f: L.PReLU(name="act")(x)),
    "prelu_shared": Case(2, lambda L, x, f: L.PReLU(shared_axes=[2, 3] if f == "channels_first" else [1, 2],
                                                    name="act")(x)),
    "leakyrelu": Case(2, lambda L, x, f: L.LeakyReLU(name="act")(x), formats=LAST),
    "dropout": Case(2, lambda L, x, f: L.Dropout(0.5, name="drop")(x), formats=LAST),
    "spatial_dropout": Case(2, lambda L, x, f: L.SpatialDropout2D(0.5, name="drop", **_cf(f))(x)),
    # joins: the second branch p2 reads the same input
    "add": Case(2, lambda L, x, f, y: L.Add(name="join")([x, y]), also=("p2",), second_branch=True, formats=LAST),
    "multiply": Case(2, lambda L, x, f, y: L.Multiply(name="join")([x, y]), also=("p2",), second_branch=True,
                     formats=LAST),
    "concatenate": Case(2, lambda L, x, f, y: L.Concatenate(axis=_chan(f, 2), name="join")([x, y]),
                        second_branch=True),
}

SHAPES = {0: (5,), 1: (8,), 2: (6, 6), 3: (3, 3, 7)}  # no size 4, 5 or 6 last: see _KERAS3_CONV3D


def build(K, case: Case, fmt: str):
    """The old model: input -> p (6 channels, relu) -> the case's layers -> head -> q."""
    L = K.layers
    if case.rank == 0:
        inp = K.Input((5,), name="x")
        make_p = lambda name: L.Dense(6, activation="relu", name=name)  # noqa: E731
    else:
        space = SHAPES[case.rank]
        inp = K.Input((3,) + space if fmt == "channels_first" else space + (3,), name="x")
        make_p = lambda name: _conv(L, case.rank)(6, 3, padding="same", activation="relu", name=name,  # noqa: E731
                                                   data_format=fmt)
    x = make_p("p")(inp)
    x = case.body(L, x, fmt, make_p("p2")(inp)) if case.second_branch else case.body(L, x, fmt)
    rank = len(x.shape) - 2
    if case.head == "dense" or rank == 0:
        pass
    elif case.head == "gap1":
        x = L.GlobalAveragePooling1D(name="gap", data_format=fmt)(x)
    else:
        gap = {1: L.GlobalAveragePooling1D, 2: L.GlobalAveragePooling2D, 3: L.GlobalAveragePooling3D}[rank]
        x = gap(name="gap", data_format=fmt)(x)
    if len(x.shape) > 2:
        x = L.Flatten(name="head_flat")(x)
    return randomize(K.Model(inp, L.Dense(3, name="q")(x), name="m"))


def silenced(K, model, case: Case):
    """A copy of ``model`` in which the deleted channels contribute nothing."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    zero = {name: [(0, -1, DELETED), (1, 0, DELETED)] for name in ("p",) + case.also}
    for c in DELETED:
        for name, entries in (case.zero(c) if case.zero else {}).items():
            zero.setdefault(name, []).extend(entries)
    for name, entries in zero.items():
        layer = clone.get_layer(name)
        w = layer.get_weights()
        for k, axis, channels in entries:
            index = [slice(None)] * w[k].ndim
            index[axis] = channels
            w[k][tuple(index)] = 0
        layer.set_weights(w)
    return clone


def _runs(model) -> bool:
    try:
        model.predict(np.zeros((1,) + tuple(model.inputs[0].shape[1:]), "float32"), verbose=0)
        return True
    except Exception:  # TensorFlow's CPU kernels: no NCHW convolution/pooling in some builds
        return False


def _verify_or_skip(K, old, new, spec, fmt):
    try:
        return surgeon.verify(old, new, spec, n=8)
    except Exception:
        if _runs(old):
            raise
        pytest.skip(f"{K.__name__} on this CPU cannot run the old {fmt} model (TensorFlow has no CPU kernel)")


def _outputs(model, x, fmt):
    if fmt == "channels_first":  # TensorFlow's CPU runs NCHW kernels right only in a rewritten graph
        return model.predict(x, verbose=0)
    return np.asarray(model(x, training=False))  # no graph to trace: fast


PARAMS = [(name, fmt) for name, case in CASES.items() for fmt in case.formats]


@pytest.mark.parametrize("name, fmt", PARAMS, ids=[f"{n}-{f.split('_')[1]}" for n, f in PARAMS])
def test_delete_channels(K, name, fmt):
    case = CASES[name]
    old = build(K, case, fmt)
    spec = {"units": {layer: KEEP for layer in ("p",) + case.also}}
    new = surgeon.transplant(old, spec)
    assert all(min(r.stats.copied, r.stats.initialized, r.stats.dropped) >= 0 for r in new.surgery_report.rows)
    reference = silenced(K, old, case)
    assert _verify_or_skip(K, reference, new, spec, fmt) <= TOL
    x = np.random.default_rng(0).normal(size=(8,) + tuple(old.inputs[0].shape[1:])).astype("float32")
    assert np.abs(_outputs(old, x, fmt) - _outputs(reference, x, fmt)).max() > 1e-4  # the deleted channels did matter


# The refusals: layers that would mix the deleted channels with others --------------------------------
def _model(K, body, shape=(6, 6, 3), fmt="channels_last"):
    L = K.layers
    inp = K.Input(shape, name="x")
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="p", data_format=fmt)(inp)
    x = body(L, x)
    if len(x.shape) > 2:
        x = L.Flatten(name="f")(x)
    return randomize(K.Model(inp, L.Dense(3, name="q")(x)))


@pytest.mark.parametrize("body, fmt, pattern", [
    (lambda L, x: L.Dense(4, name="d")(x), "channels_first", r"'d' \(Dense\): Dense reads the last axis"),
    (lambda L, x: L.Reshape((6, 36), name="rs")(x), "channels_last", r"'rs' \(Reshape\).*mixes the units' axis 3"),
    (lambda L, x: L.BatchNormalization(axis=2, name="bn")(x), "channels_last",
     r"'bn' \(BatchNormalization\): it works on axis \[2\].*training"),
    (lambda L, x: L.MaxPooling2D(2, data_format="channels_first", name="pool")(x), "channels_last",
     r"'pool' \(MaxPooling2D\): data_format 'channels_first'"),
], ids=["dense_on_channels_first", "reshape_mixing", "batchnorm_other_axis", "pool_other_format"])
def test_delete_channels_refused(K, body, fmt, pattern):
    old = _model(K, body, (3, 6, 6) if fmt == "channels_first" else (6, 6, 3), fmt)
    spec = {"units": {"p": KEEP}}
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(old, spec)
    if _runs(old):
        assert surgeon.verify(old, surgeon.transplant(old, {}), {}, n=4) == 0  # the model as it is: exact
