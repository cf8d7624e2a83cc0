"""Unit-ID bookkeeping for one tensor: which unit of the old tensor each new unit comes from.

Every tensor in the graph has a *unit axis* (the last axis for Dense features and channels-last
images, axis 0 of the per-sample shape for channels-first images). Its units carry IDs: the feature
names of a model input, a layer's unit IDs, ``(position, id)`` pairs after a Flatten. Surgery only
needs, for each unit of the new tensor, the index of the unit of the old tensor it stands for
(``src``, ``-1`` for a new unit) and a factor for the weights that read it (``scale``, Net2Net's
split; ``1`` otherwise). Everything here is plain NumPy.
"""

from __future__ import annotations

import operator
from collections import abc
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

    return TensorIDs(
        ids=FlatIDs(new_coords, t.axis, t.ids),
        src=src,
        scale=t.scale[units],
        shape=(units.shape[0],),
        axis=0,
        old_ids=FlatIDs(old_coords, t.axis, t.old_ids),
        old_shape=(old_coords.shape[1],),
        fresh=t.fresh,
    )


class FlatIDs(abc.Sequence):
    """The ``(position, id)`` pairs of a flattened tensor, one per element, made when asked for.

    A list of the pairs costs two Python tuples per element (a Nature-DQN Flatten has 3136, a
    ResNet's can have 10^5), and surgery itself only needs ``src``; this sequence holds the
    coordinates as one NumPy array and builds a pair on access. It compares equal to a list of the
    same pairs and to another ``FlatIDs`` with the same pairs.

    Args:
        coords: ``rank × n`` coordinates of the elements in Flatten's order.
        axis: the unit axis; its coordinate indexes ``ids``, the others form the position.
        ids: the unit IDs along ``axis``.
    """

    __slots__ = ("_positions", "_units", "_ids")

    def __init__(self, coords: np.ndarray, axis: int, ids: Sequence[Hashable]):
        self._positions = np.delete(coords, axis, axis=0).T
        self._units = np.ascontiguousarray(coords[axis])
        self._ids = ids if isinstance(ids, (list, tuple)) else list(ids)

    def __len__(self) -> int:
        return int(self._units.shape[0])

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self._pair(i) for i in range(*k.indices(len(self)))]
        n = len(self)
        k = operator.index(k)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("FlatIDs index out of range")
        return self._pair(k)

    def _pair(self, k: int) -> tuple:
        return tuple(self._positions[k].tolist()), self._ids[int(self._units[k])]

    def __iter__(self):
        ids = self._ids
        for p, u in zip(self._positions.tolist(), self._units.tolist()):
            yield tuple(p), ids[u]

    def __contains__(self, item) -> bool:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], tuple)):
            return False  # every element is a (position, id) pair: nothing else can be found
        return any(x == item for x in self)

    def __eq__(self, other) -> bool:
        if isinstance(other, FlatIDs):
            if len(self) != len(other):
                return False
            if (np.array_equal(self._positions, other._positions) and np.array_equal(self._units, other._units)
                    and list(self._ids) == list(other._ids)):
                return True
            return list(self) == list(other)
        if isinstance(other, list):
            return len(self) == len(other) and list(self) == other
        return NotImplemented

    __hash__ = None  # mutable-sequence semantics, like the list it stands for

    def __repr__(self) -> str:
        return repr(list(self))


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
