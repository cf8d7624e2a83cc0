"""Unit-ID bookkeeping for one tensor: which unit of the old tensor each new unit comes from.

Every tensor in the graph has a *unit axis* (the last axis for Dense features and channels-last
images, axis 0 of the per-sample shape for channels-first images). Its units carry IDs: the feature
names of a model input, a layer's unit IDs, ``(position, id)`` pairs after a Flatten. Surgery only
needs, for each unit of the new tensor, the index of the unit of the old tensor it stands for
(``src``, ``-1`` for a new unit) and a factor for the weights that read it (``scale``, Net2Net's
split; ``1`` otherwise). Everything here is plain NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np


def index_of(ids: Sequence[Hashable], wanted: Sequence[Hashable]) -> np.ndarray:
    """Positions of ``wanted`` IDs in ``ids``; ``-1`` where an ID is absent."""
    lookup = {uid: i for i, uid in enumerate(ids)}
    return np.fromiter((lookup.get(uid, -1) for uid in wanted), dtype=np.int64, count=len(wanted))


@dataclass
class TensorIDs:
    """The units of one tensor in the new model, related to the tensor it replaces in the old one.

    Attributes:
        ids: the new tensor's unit IDs, in order along the unit axis.
        src: for each new unit, the index of its source unit in the old tensor (``-1``: new unit).
        scale: for each new unit, a factor on the weights that read it (Net2Net's split).
        shape: the new per-sample shape (no batch axis).
        axis: the unit axis, as a non-negative index into ``shape``.
        old_ids: the old tensor's unit IDs.
        old_shape: the old per-sample shape.
        fresh: the units with ``src == -1`` are not new units added to a known tensor but units of a
            new layer; readers initialize their weights from the layer's own initializer rather than
            zeroing them.
    """

    ids: list
    src: np.ndarray
    scale: np.ndarray
    shape: tuple
    axis: int
    old_ids: list
    old_shape: tuple
    fresh: bool = field(default=False)

    @classmethod
    def unchanged(cls, ids: Sequence[Hashable], shape: tuple, axis: int = -1) -> "TensorIDs":
        """A tensor whose units are the same in the old and the new model."""
        ids = list(ids)
        axis = axis % len(shape) if shape else 0
        return cls(ids, np.arange(len(ids)), np.ones(len(ids)), tuple(shape), axis, ids, tuple(shape))

    @classmethod
    def edited(cls, old_ids: Sequence[Hashable], new_ids: Sequence[Hashable], old_shape: tuple,
               axis: int = -1) -> "TensorIDs":
        """A tensor whose unit IDs went from ``old_ids`` to ``new_ids`` (matched by ID)."""
        old_ids, new_ids = list(old_ids), list(new_ids)
        axis = axis % len(old_shape)
        shape = list(old_shape)
        shape[axis] = len(new_ids)
        return cls(new_ids, index_of(old_ids, new_ids), np.ones(len(new_ids)), tuple(shape), axis,
                   old_ids, tuple(old_shape))

    @property
    def width(self) -> int:
        return len(self.ids)

    @property
    def old_width(self) -> int:
        return len(self.old_ids)

    @property
    def changed(self) -> bool:
        """True when anything reading this tensor sees different units than before."""
        return (
            self.shape != self.old_shape
            or self.width != self.old_width
            or not np.array_equal(self.src, np.arange(self.old_width))
            or not np.all(self.scale == 1.0)
        )

    def with_shape(self, shape: tuple, old_shape: tuple, axis: int) -> "TensorIDs":
        """The same units on a tensor of another shape (pooling, padding, global pooling)."""
        return TensorIDs(self.ids, self.src, self.scale, tuple(shape), axis % max(len(shape), 1),
                         self.old_ids, tuple(old_shape), self.fresh)

    def describe(self, limit: int = 8) -> str:
        shown = ", ".join(repr(i) for i in self.ids[:limit])
        more = f", … ({self.width} in all)" if self.width > limit else ""
        return f"[{shown}{more}]"


def _flat_order(shape: tuple, axis: int, channels_first_flatten: bool) -> tuple[np.ndarray, tuple]:
    """Coordinates (rank × size) of every element of ``shape`` in Flatten's output order."""
    rank = len(shape)
    perm = list(range(rank))
    if channels_first_flatten and rank >= 2:
        perm = perm[1:] + perm[:1]  # Keras' Flatten(data_format="channels_first") moves axis 0 last
    permuted = tuple(shape[p] for p in perm)
    grid = np.indices(permuted).reshape(rank, -1)
    coords = np.empty_like(grid)
    coords[perm] = grid
    return coords, permuted


def flatten(t: TensorIDs, channels_first: bool = False) -> TensorIDs:
    """Unit IDs after a Flatten: one ``(position, id)`` pair per element, in Flatten's order.

    Args:
        t: the IDs of Flatten's input.
        channels_first: Flatten's ``data_format`` is ``"channels_first"`` (Keras then flattens in
            channels-last order).

    Returns:
        IDs of the flat tensor; ``src`` points at the same element of the old flat tensor, ``-1``
        for elements of new units or of positions the old tensor did not have.
    """
    if any(d is None for d in t.shape) or any(d is None for d in t.old_shape):
        raise ValueError("Flatten needs a fully known input shape")
    new_coords, _ = _flat_order(t.shape, t.axis, channels_first)
    old_coords, old_permuted = _flat_order(t.old_shape, t.axis, channels_first)
    units = new_coords[t.axis]
    src_units = t.src[units]
    mapped = new_coords.copy()
    mapped[t.axis] = src_units
    inside = src_units >= 0
    for ax, dim in enumerate(t.old_shape):
        if ax != t.axis:
            inside &= mapped[ax] < dim
    perm = list(range(len(t.shape)))
    if channels_first and len(t.shape) >= 2:
        perm = perm[1:] + perm[:1]
    src = np.full(units.shape[0], -1, dtype=np.int64)
    src[inside] = np.ravel_multi_index(tuple(mapped[p][inside] for p in perm), old_permuted)

    def pairs(coords, ids):
        positions = np.delete(coords, t.axis, axis=0).T.tolist()
        return [(tuple(p), ids[u]) for p, u in zip(positions, coords[t.axis].tolist())]

    return TensorIDs(
        ids=pairs(new_coords, t.ids),
        src=src,
        scale=t.scale[units],
        shape=(units.shape[0],),
        axis=0,
        old_ids=pairs(old_coords, t.old_ids),
        old_shape=(old_coords.shape[1],),
        fresh=t.fresh,
    )


def concatenate(parts: Sequence[TensorIDs]) -> TensorIDs:
    """IDs after concatenating along the unit axis; each branch's IDs are tagged with its index."""
    ids, old_ids, srcs, scales = [], [], [], []
    offset = 0
    for k, p in enumerate(parts):
        ids += [(k, i) for i in p.ids]
        old_ids += [(k, i) for i in p.old_ids]
        srcs.append(np.where(p.src >= 0, p.src + offset, -1))
        scales.append(p.scale)
        offset += p.old_width
    first = parts[0]
    shape = list(first.shape)
    shape[first.axis] = len(ids)
    old_shape = list(first.old_shape)
    old_shape[first.axis] = len(old_ids)
    return TensorIDs(ids, np.concatenate(srcs), np.concatenate(scales), tuple(shape), first.axis,
                     old_ids, tuple(old_shape), all(p.fresh for p in parts))
