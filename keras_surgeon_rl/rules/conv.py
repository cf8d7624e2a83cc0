"""Convolutions: input-channel IDs map into every filter's channel axis, filter IDs are the units.

Kernels are ``[*window, in_channels, filters]`` (Conv1D/2D/3D) and ``[*window, in_channels,
multiplier]`` (DepthwiseConv). The unit axis follows ``data_format``.
"""

from __future__ import annotations

import numpy as np

from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule
from keras_surgeon_rl.spec import Insertion
from keras_surgeon_rl.weights import AxisMap, Copy, Fresh, Generated, zeros


def channel_axis(config: dict, rank: int) -> int:
    """The per-sample channel axis of a layer's data for its ``data_format``."""
    return 0 if config.get("data_format") == "channels_first" else rank - 1


def check_channel_axis(ctx: Context, t: TensorIDs) -> None:
    if t.changed and "data_format" in ctx.node.config:
        want = channel_axis(ctx.node.config, len(t.shape))
        if want != t.axis:
            raise ctx.fail(
                f"data_format {ctx.node.config.get('data_format')!r} puts channels on axis {want + 1}, "
                f"but the changed unit IDs reaching it are on axis {t.axis + 1}; give the model input's "
                "unit axis in the spec ('inputs': {..., 'axis': 1} for channels-first data)")


def tap_kernel(where: str):
    """A kernel that copies each channel from one tap: the window centre or its top-right tap."""

    def make(shape, dtype):
        kernel = np.zeros(shape, dtype)
        window = shape[:-2]
        if where == "identity":
            tap = tuple(k // 2 for k in window)
        else:  # top_right: first row, last column (last tap for 1-D windows)
            tap = (0,) * (len(window) - 1) + (window[-1] - 1,)
        n = min(shape[-2], shape[-1])
        kernel[tap + (np.arange(n), np.arange(n))] = 1
        return kernel

    return make


class ConvRule(Rule):
    owns_units = True

    def unit_count(self, config: dict) -> int:
        return int(config["filters"])

    def resize(self, config: dict, n: int) -> dict:
        return {**config, "filters": int(n)}

    def unit_axis(self, config: dict, rank: int) -> int:
        return channel_axis(config, rank)

    def reads_axis(self, config: dict, rank: int) -> int:
        return channel_axis(config, rank)

    def check(self, ctx: Context) -> None:
        t = ctx.input
        check_channel_axis(ctx, t)
        if int(ctx.node.config.get("groups", 1)) != 1 and ctx.changed:
            raise ctx.fail("a grouped convolution (groups > 1) reads each group of channels with its own filters, "
                           "so neither its filters nor the channels reaching it can change by ID; keep both unchanged")

    def output_ids(self, ctx: Context) -> TensorIDs:
        u = ctx.units
        axis = channel_axis(ctx.node.config, len(ctx.out_shape))
        return TensorIDs(u.new_ids, u.src, u.scale, tuple(ctx.out_shape), axis, u.old_ids,
                         tuple(ctx.old_out_shape))

    def weight_maps(self, ctx: Context) -> dict:
        if ctx.insertion is not None:
            n = len(ctx.units.new_ids)
            ks = ctx.node.config["kernel_size"]
            window = (ks,) * (len(ctx.input.shape) - 1) if isinstance(ks, int) else tuple(ks)
            kernel, bias = window + (ctx.input.width, n), (n,)
            if ctx.insertion.init == "random":
                return {"kernel": Fresh(shape=kernel), "bias": Fresh(shape=bias)}
            return {"kernel": Generated(tap_kernel(ctx.insertion.init), ctx.insertion.init, kernel),
                    "bias": Generated(zeros, "zeros", bias)}
        window = len(ctx.old.weight("kernel").shape) - 2
        rows = ctx.read_axis(ctx.input, data_axis=channel_axis(ctx.node.config, len(ctx.input.shape)))
        maps = {"kernel": Copy("kernel", [None] * window + [rows, ctx.unit_axis()])}
        if "bias" in ctx.old.weight_names:
            maps["bias"] = Copy("bias", [ctx.unit_axis(with_offset=True)])
        return maps

    def insert_config(self, insertion: Insertion, t: TensorIDs, name: str) -> dict:
        rank = len(t.shape) - 1
        config = {"name": name, "filters": t.width, "kernel_size": (3,) * rank, "padding": "same",
                  "activation": "linear", "use_bias": True,
                  "data_format": "channels_first" if t.axis == 0 else "channels_last"}
        config.update(insertion.config)
        if insertion.init == "identity":
            ks = config["kernel_size"]
            ks = (ks,) * rank if isinstance(ks, int) else tuple(ks)
            strides = config.get("strides", 1)
            dil = config.get("dilation_rate", 1)
            if (config["padding"] != "same" or any(k % 2 == 0 for k in ks)
                    or any(s != 1 for s in np.atleast_1d(strides)) or any(d != 1 for d in np.atleast_1d(dil))):
                from keras_surgeon_rl.errors import SurgeryError

                raise SurgeryError(
                    f"insert after {insertion.after!r}: an identity {insertion.layer} needs padding='same', "
                    f"stride 1, no dilation and an odd kernel size; got padding={config['padding']!r}, "
                    f"kernel_size={config['kernel_size']!r}, strides={strides!r}. Fix those, or use "
                    "init 'top_right' or 'random'")
        return config


class DepthwiseConvRule(Rule):
    """DepthwiseConv: each input channel has its own filters; output channel ``c * m + k``."""

    def reads_axis(self, config: dict, rank: int) -> int:
        return channel_axis(config, rank)

    def check(self, ctx: Context) -> None:
        check_channel_axis(ctx, ctx.input)

    def _multiplier(self, ctx: Context) -> int:
        return int(ctx.node.config.get("depth_multiplier", 1))

    def output_ids(self, ctx: Context) -> TensorIDs:
        t, m = ctx.input, self._multiplier(ctx)
        axis = channel_axis(ctx.node.config, len(ctx.out_shape))
        if m == 1:
            return t.with_shape(ctx.out_shape, ctx.old_out_shape, axis)
        src = np.where(t.src[:, None] >= 0, t.src[:, None] * m + np.arange(m), -1).reshape(-1)
        return TensorIDs([(i, k) for i in t.ids for k in range(m)], src, np.repeat(t.scale, m),
                         tuple(ctx.out_shape), axis, [(i, k) for i in t.old_ids for k in range(m)],
                         tuple(ctx.old_out_shape), t.fresh)

    def weight_maps(self, ctx: Context) -> dict:
        t, m = ctx.input, self._multiplier(ctx)
        maps = {}
        for name in ctx.old.weight_names:
            if name in ("kernel", "depthwise_kernel"):
                window = len(ctx.old.weight(name).shape) - 2
                maps[name] = Copy(name, [None] * window + [ctx.per_unit(t), None])
            elif name == "bias":
                src = np.where(t.src[:, None] >= 0, t.src[:, None] * m + np.arange(m), -1).reshape(-1)
                maps[name] = Copy(name, [AxisMap(src)])
        return maps
