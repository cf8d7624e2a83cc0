"""Dense: the kernel ``W[in, out]`` maps input IDs to rows and the layer's unit IDs to columns.

A Keras 3 LoRA Dense (``lora_rank``) computes with ``W + A @ B``: ``A``'s rows follow the input IDs
and ``B``'s columns the units, so the sum follows them exactly.
"""

from __future__ import annotations

import numpy as np

from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule
from keras_surgeon_rl.spec import Insertion
from keras_surgeon_rl.weights import Copy, Fresh, Generated, zeros

#: Activations whose outputs are never negative: an identity layer with ReLU after them is exact.
NON_NEGATIVE = {"relu", "relu6", "sigmoid", "softmax", "softplus", "hard_sigmoid", "exponential"}


def activation_name(config: dict) -> str:
    act = config.get("activation", "linear")
    if isinstance(act, dict):  # serialized function
        act = act.get("config", act).get("name", str(act)) if isinstance(act.get("config", act), dict) else str(act)
    return str(act or "linear")


def outputs_non_negative(class_name: str, config: dict) -> bool:
    """True when a layer's outputs are known to be non-negative."""
    if class_name == "ReLU":
        return config.get("negative_slope", 0.0) == 0.0 and (config.get("threshold") or 0.0) >= 0.0
    return activation_name(config) in NON_NEGATIVE


def identity_note(ctx: Context, source_non_negative: bool) -> None:
    """Say when an inserted identity layer passes its input through only approximately."""
    act = activation_name(ctx.node.config)
    if act in ("linear", "None"):
        return
    if act in ("relu", "relu6") and source_non_negative:
        if act == "relu6":
            ctx.notes.append("identity through relu6 is exact only for inputs up to 6")
        return
    ctx.notes.append(f"identity with activation {act!r} is exact only where {act}(x) == x; "
                     "insert with activation 'linear', or after a ReLU with activation 'relu'")


def inserted_note(ctx: Context, after_class: str, after_config: dict) -> None:
    """Notes on what an inserted Dense/Conv layer preserves."""
    ins = ctx.insertion
    if ins.init == "random":
        ctx.notes.append("inserted with random weights: the function changes")
        return
    if ins.init == "top_right":
        ctx.notes.append("top_right init shifts each feature map by the kernel's half-width: "
                         "approximate; use init 'identity' for an exact pass-through")
    t = ctx.input
    if ctx.units is not None and len(ctx.units.new_ids) < t.width:
        ctx.notes.append(f"narrower than its input ({len(ctx.units.new_ids)} < {t.width} units): "
                         "the units beyond are dropped")
    identity_note(ctx, outputs_non_negative(after_class, after_config))


class LastAxisUnits(Rule):
    """A layer whose config's ``units`` are its units, on the last axis of its output, and that reads
    the last axis of its input (Dense; SimpleRNN, GRU and LSTM)."""

    owns_units = True

    def unit_count(self, config: dict) -> int:
        return int(config["units"])

    def resize(self, config: dict, n: int) -> dict:
        return {**config, "units": int(n)}

    def reads_axis(self, config: dict, rank: int) -> int:
        return rank - 1

    def output_ids(self, ctx: Context) -> TensorIDs:
        u = ctx.units
        return TensorIDs(u.new_ids, u.src, u.scale, tuple(ctx.out_shape), len(ctx.out_shape) - 1,
                         u.old_ids, tuple(ctx.old_out_shape))


class DenseRule(LastAxisUnits):
    def check(self, ctx: Context) -> None:
        t = ctx.input
        if t.changed and t.axis != len(t.shape) - 1:
            raise ctx.fail(f"Dense reads the last axis, but the changed unit IDs are on axis {t.axis + 1} "
                           "(channels-first data); add a Permute or Flatten before it")

    def weight_maps(self, ctx: Context) -> dict:
        if ctx.insertion is not None:
            return self._inserted(ctx)
        rows, columns = ctx.read_axis(ctx.input, data_axis=-1), ctx.unit_axis()
        maps = {"kernel": Copy("kernel", [rows, columns])}
        if "bias" in ctx.old.weight_names:
            maps["bias"] = Copy("bias", [ctx.unit_axis(with_offset=True)])
        if "lora_kernel_a" in ctx.old.weight_names:  # Keras 3 LoRA: kernel + a @ b, a's rows and b's columns
            maps["lora_kernel_a"] = Copy("lora_kernel_a", [rows, None])
            maps["lora_kernel_b"] = Copy("lora_kernel_b", [None, columns])
        if ctx.units.changed and activation_name(ctx.node.config) == "softmax":
            ctx.notes.append("softmax over a changed set of units: the kept outputs change too")
        return maps

    def _inserted(self, ctx: Context) -> dict:
        n = len(ctx.units.new_ids)
        kernel, bias = (ctx.input.width, n), (n,)
        if ctx.insertion.init == "random":
            return {"kernel": Fresh(shape=kernel), "bias": Fresh(shape=bias)}
        return {"kernel": Generated(lambda shape, dtype: np.eye(*shape, dtype=dtype), "identity", kernel),
                "bias": Generated(zeros, "zeros", bias)}

    def insert_config(self, insertion: Insertion, t: TensorIDs, name: str) -> dict:
        config = {"name": name, "units": t.width, "activation": "linear", "use_bias": True}
        config.update(insertion.config)
        return config
