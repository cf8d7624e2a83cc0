"""The per-layer report of a surgery: what was copied, newly initialized and dropped."""

from __future__ import annotations

from dataclasses import dataclass, field

from keras_surgeon_rl.weights import LayerStats


@dataclass
class LayerReport:
    name: str
    class_name: str
    status: str  # input, kept, changed, inserted, deleted
    old_shape: tuple | None
    new_shape: tuple | None
    stats: LayerStats = field(default_factory=LayerStats)
    notes: list[str] = field(default_factory=list)


def _shape(s) -> str:
    return "—" if s is None else "(" + ", ".join("None" if d is None else str(d) for d in s) + ")"


@dataclass
class Report:
    """Rows per layer; prints as a table. ``totals`` sums the parameter counts."""

    model_name: str
    rows: list[LayerReport]

    @property
    def totals(self) -> LayerStats:
        t = LayerStats()
        for r in self.rows:
            t.add((r.stats.copied, r.stats.initialized, r.stats.dropped))
        return t

    def row(self, name: str) -> LayerReport:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def notes(self) -> list[str]:
        return [f"{r.name}: {n}" for r in self.rows for n in r.notes]

    def to_dict(self) -> dict:
        return {
            "model": self.model_name,
            "layers": [
                {"name": r.name, "class": r.class_name, "status": r.status,
                 "old_shape": r.old_shape, "new_shape": r.new_shape, "copied": r.stats.copied,
                 "initialized": r.stats.initialized, "dropped": r.stats.dropped, "notes": r.notes}
                for r in self.rows
            ],
        }

    def __str__(self) -> str:
        head = ("layer", "class", "status", "output old → new", "copied", "new", "dropped")
        body = [
            (r.name, r.class_name, r.status, f"{_shape(r.old_shape)} → {_shape(r.new_shape)}",
             f"{r.stats.copied:,}", f"{r.stats.initialized:,}", f"{r.stats.dropped:,}")
            for r in self.rows
        ]
        t = self.totals
        body.append(("total", "", "", "", f"{t.copied:,}", f"{t.initialized:,}", f"{t.dropped:,}"))
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        right = {4, 5, 6}

        def fmt(row):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

        lines = [f"Surgery on {self.model_name!r} (parameters)", fmt(head), fmt(tuple("-" * w for w in widths))]
        lines += [fmt(r) for r in body[:-1]] + [fmt(tuple("-" * w for w in widths)), fmt(body[-1])]
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__
