"""How each weight array of the new model is made from the old one: index maps, in plain NumPy.

A :class:`Copy` says, for every axis of the new array, which index of the old array each entry
comes from (``-1``: not from the old array). Entries that come from nowhere keep the new layer's
freshly initialized value, or are set to zero where an axis says so (the rows that read new input
units, so the function is unchanged). :class:`Generated` arrays (an identity kernel) and
:class:`Fresh` ones (the layer's own initializer) complete the set. Each map also counts what it
copies, initializes and drops, without touching any array, so a dry run costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np


@dataclass
class AxisMap:
    """Where the entries along one axis of a new array come from.

    Attributes:
        src: for each new index, the old index (``-1``: none).
        scale: optional factor per new index (Net2Net's split of outgoing weights).
        zero: optional mask of new indices whose entries are set to zero across the whole array
            (not left at their fresh values): the rows that read new input units.
        offset: optional value added per new index after copying (e.g. lowering a copied bias).
    """

    src: np.ndarray
    scale: Optional[np.ndarray] = None
    zero: Optional[np.ndarray] = None
    offset: Optional[np.ndarray] = None

    @classmethod
    def identity(cls, n: int) -> "AxisMap":
        return cls(np.arange(n))


@dataclass
class Copy:
    """A new array filled from the old array ``source`` through one :class:`AxisMap` per axis.

    ``None`` for an axis means "same size, same order".
    """

    source: str
    axes: Sequence[Optional[AxisMap]]

    def _resolved(self, old_shape: tuple) -> list[AxisMap]:
        return [a if a is not None else AxisMap.identity(d) for a, d in zip(self.axes, old_shape)]

    def apply(self, old: np.ndarray, fresh: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The new array from the old array ``old`` and the new layer's initial value ``fresh``.

        Args:
            old: the old array ``source``.
            fresh: the new layer's initial value (only its shape and dtype are read when
                :meth:`overwrites_all`; a broadcast placeholder will do).
            out: optional array of ``fresh``'s shape and dtype to write the result into (its
                contents are overwritten), instead of a new one.

        Returns:
            The new array (``out`` when given).

        Example:
            >>> Copy("kernel", [AxisMap(np.array([1, 0])), None]).apply(np.eye(2), np.zeros((2, 2)))
            array([[0., 1.],
                   [1., 0.]])
        """
        axes = self._resolved(old.shape)
        if len(axes) != old.ndim or len(axes) != fresh.ndim:
            raise ValueError(f"map for {self.source!r} has {len(axes)} axes, arrays have "
                             f"{old.ndim} (old) and {fresh.ndim} (new)")
        keep = [np.flatnonzero(a.src >= 0) for a in axes]
        if out is not None and (out.shape != fresh.shape or out.dtype != fresh.dtype):
            raise ValueError(f"map for {self.source!r}: out has shape {out.shape} and dtype {out.dtype}, "
                             f"the new array {fresh.shape} and {fresh.dtype}")
        if all(k.size == n for k, n in zip(keep, fresh.shape)):
            # every entry is copied (the common case: an unchanged or only rewired array), so the
            # fresh values and the zeroing would all be overwritten
            out = np.empty(fresh.shape, dtype=fresh.dtype) if out is None else out
        else:
            if out is None:
                out = np.array(fresh, dtype=fresh.dtype, copy=True)
            else:
                out[...] = fresh
            for ax, a in enumerate(axes):
                if a.zero is not None and a.zero.any():
                    index = [slice(None)] * out.ndim
                    index[ax] = np.flatnonzero(a.zero)
                    out[tuple(index)] = 0
        if all(k.size for k in keep):
            # Whole blocks move by slicing (memcpy speed, no index arrays) wherever the indices along
            # an axis are a contiguous run, which they are for kept, widened and appended units;
            # only the other axes are gathered/scattered with index arrays.
            block = _gather(old, [_as_run(a.src[k]) for a, k in zip(axes, keep)])
            for ax, (a, k) in enumerate(zip(axes, keep)):
                if a.scale is not None:
                    shape = [1] * old.ndim
                    shape[ax] = k.size
                    block = block * a.scale[k].reshape(shape)
            _scatter(out, [_as_run(k) for k in keep], block)
        for ax, a in enumerate(axes):
            if a.offset is not None:
                shape = [1] * out.ndim
                shape[ax] = out.shape[ax]
                out += a.offset.reshape(shape).astype(out.dtype)
        return out

    def overwrites_all(self) -> bool:
        """Whether :meth:`apply` sets every entry of the new array from the old one (so the new
        layer's initial value is never read, and need not be drawn at random).

        An entry is set when every axis copies its index, or when one axis zeroes it (the rows that
        read new input units); one left at its fresh value needs, on every axis, an index that is not
        zeroed, and on some axis one that copies nothing.
        """
        free = [None if a is None else (np.ones(a.src.shape, bool) if a.zero is None else ~a.zero.astype(bool))
                for a in self.axes]
        if any(f is not None and not f.any() for f in free):
            return True
        return all(a is None or bool((a.src[f] >= 0).all()) for a, f in zip(self.axes, free))

    def counts(self, old_shape: tuple, new_shape: tuple) -> tuple[int, int, int]:
        """(copied, initialized, dropped) entry counts, each between 0 and the array's size.

        Only indices inside the old array count as copied (a map that does not fit the array is
        refused before anything is built, see :func:`keras_surgeon_rl.checks.check_maps`; the
        counts of a dry run stay meaningful either way).
        """
        axes = self._resolved(old_shape)
        valid = [a.src[(a.src >= 0) & (a.src < d)] for a, d in zip(axes, old_shape)]
        copied = int(np.prod([v.size for v in valid]))
        used = int(np.prod([np.unique(v).size for v in valid]))
        size = int(np.prod(new_shape))
        copied = min(copied, size)
        return copied, size - copied, int(np.prod(old_shape)) - used


def _as_run(index: np.ndarray):
    """``index`` as a ``slice`` when it is a contiguous ascending run of non-negative indices."""
    n = index.size
    if n == 0:
        return index
    start = int(index[0])
    if start >= 0 and int(index[-1]) - start == n - 1 and (
            n <= 2 or np.array_equal(index, np.arange(start, start + n))):
        return slice(start, start + n)
    return index


def _gather(old: np.ndarray, index: list) -> np.ndarray:
    """``old[np.ix_(*index)]`` with slices where given: a view when every axis is a slice."""
    block = old[tuple(i if isinstance(i, slice) else slice(None) for i in index)]
    for ax, i in enumerate(index):
        if not isinstance(i, slice):
            block = np.take(block, i, axis=ax)
    return block


def _scatter(out: np.ndarray, index: list, block: np.ndarray) -> None:
    """``out[np.ix_(*index)] = block`` with slices where given."""
    arrays = [ax for ax, i in enumerate(index) if not isinstance(i, slice)]
    if len(arrays) <= 1:  # one index array among slices keeps its place: plain indexing is ix_
        out[tuple(index)] = block
    else:
        out[np.ix_(*[np.arange(i.start, i.stop) if isinstance(i, slice) else i for i in index])] = block


@dataclass
class Generated:
    """A new array computed from its shape alone (an identity kernel, a zero bias)."""

    make: Callable[[tuple, np.dtype], np.ndarray]
    what: str = "generated"
    shape: Optional[tuple] = None  # the array's shape, where the plan knows it before building

    def apply(self, old, fresh: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        value = np.asarray(self.make(fresh.shape, fresh.dtype), dtype=fresh.dtype)
        if out is None:
            return value
        out[...] = value
        return out

    def overwrites_all(self) -> bool:
        return True

    def counts(self, old_shape, new_shape) -> tuple[int, int, int]:
        return 0, int(np.prod(new_shape)), 0


@dataclass
class Fresh:
    """Keep the new layer's own initial value."""

    source: Optional[str] = None
    shape: Optional[tuple] = None

    def apply(self, old, fresh: np.ndarray) -> np.ndarray:
        return np.array(fresh, copy=True)

    def overwrites_all(self) -> bool:
        return False

    def counts(self, old_shape, new_shape) -> tuple[int, int, int]:
        dropped = int(np.prod(old_shape)) if old_shape is not None else 0
        return 0, int(np.prod(new_shape)), dropped


ArrayMap = Copy | Generated | Fresh


@dataclass
class LayerStats:
    copied: int = 0
    initialized: int = 0
    dropped: int = 0

    def add(self, c: tuple[int, int, int]) -> None:
        self.copied += c[0]
        self.initialized += c[1]
        self.dropped += c[2]


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)
