"""Refusing sizes no machine can build, at once and before any array of that size exists.

A typo such as ``units: {hidden: 1000000000000}`` would otherwise hang listing unit IDs or exhaust
memory while building. The spec's schema caps a unit count at :data:`~keras_surgeon_rl.schema.MAX_UNITS`;
here a resized layer's new weights, and then the whole new model, must fit in half this machine's
memory (the old model, the new one and the framework's copies need the rest).
"""

from __future__ import annotations

import os

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Node

BYTES_PER_PARAMETER = 4  # float32


def memory_bytes() -> int:
    """This machine's physical memory (a large default where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def budget_parameters() -> int:
    return memory_bytes() // 2 // BYTES_PER_PARAMETER


def _gb(n_params: int) -> str:
    return f"{n_params * BYTES_PER_PARAMETER / 1e9:.3g} GB"


def check_size(node: Node, value) -> None:
    """Refuse ``units[node] = value`` when the layer's own new weights alone would not fit."""
    n = value if isinstance(value, int) else len(value)
    old_units = max(int(node.output_shape[-1] or 1), 1) if node.output_shape else 1
    per_unit = sum(int(w.size) for _, w in node.weights) / old_units
    params = int(per_unit * n)
    if params > budget_parameters():
        raise SurgeryError(f"units[{node.name!r}]: {n:,} units would give layer {node.name!r} about {params:,} "
                           f"parameters ({_gb(params)} as float32), more than half this machine's memory "
                           f"({memory_bytes() / 1e9:.3g} GB); check the count")


def check_plan_size(report) -> None:
    """Refuse a plan whose new model would not fit in half this machine's memory."""
    rows = [r for r in report.rows if r.stats is not None]
    total = sum(r.stats.copied + r.stats.initialized for r in rows)
    if total > budget_parameters():
        big = max(rows, key=lambda r: r.stats.copied + r.stats.initialized)
        raise SurgeryError(f"the new model would have {total:,} parameters ({_gb(total)} as float32), more than half "
                           f"this machine's memory ({memory_bytes() / 1e9:.3g} GB); the largest layer is {big.name!r} "
                           f"with {big.stats.copied + big.stats.initialized:,}: check 'units' and 'insert'")
