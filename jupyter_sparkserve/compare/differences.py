"""How two sets of predictions over the same rows differ, one output at a time: labels
(the share that changed, and which way) or numbers (the distribution of B - A, and the rows
that moved most)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

HISTOGRAM_BINS = 30
SHOWN_ROWS = 20  # changed rows listed in the report (all of them stay in changed_index)
SHOWN_TRANSITIONS = 12
# Two numbers this close are the same answer (float noise from another library build).
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class OutputChanges:
    """One output's comparison. `changed_index`: every changed row's index, in row order;
    `shown`: the rows listed (labels: the first changed; numbers: the largest moves)."""

    output: str
    kind: str  # "labels" or "numeric"
    rows: int
    changed_index: list[Any]
    shown: list[dict[str, Any]]
    transitions: list[dict[str, Any]]  # labels: {"a", "b", "rows"}, most frequent first
    histogram: dict[str, list[float]] | None  # numeric: {"edges", "counts"} of B - A
    stats: dict[str, float]  # numeric: mean, mean_abs, max_abs, p50, p99 of B - A

    @property
    def changed(self) -> int:
        return len(self.changed_index)

    @property
    def changed_share(self) -> float:
        return self.changed / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "kind": self.kind,
            "rows": self.rows,
            "changed": self.changed,
            "changed_share": self.changed_share,
            "changed_index": [_plain(i) for i in self.changed_index],
            "shown": self.shown,
            "transitions": self.transitions,
            "histogram": self.histogram,
            "stats": self.stats,
        }


def is_numeric(a: pd.Series, b: pd.Series) -> bool:
    """Floats on both sides are scores; integers, strings and booleans are labels."""
    return pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b)


def compare_output(output: str, a: pd.Series, b: pd.Series) -> OutputChanges:
    if is_numeric(a, b):
        return _numeric(output, a, b)
    return _labels(output, a, b)


def _labels(output: str, a: pd.Series, b: pd.Series) -> OutputChanges:
    left, right = a.map(_label), b.map(_label)
    changed = left != right
    index = list(a.index[changed.to_numpy()])
    shown = [
        {"row": _plain(row), "a": _plain(left[row]), "b": _plain(right[row])}
        for row in index[:SHOWN_ROWS]
    ]
    pairs = pd.DataFrame({"a": left[changed], "b": right[changed]})
    counts = pairs.value_counts(dropna=False).head(SHOWN_TRANSITIONS)
    transitions = [{"a": _plain(x), "b": _plain(y), "rows": int(n)} for (x, y), n in counts.items()]
    return OutputChanges(output, "labels", len(a), index, shown, transitions, None, {})


def _numeric(output: str, a: pd.Series, b: pd.Series) -> OutputChanges:
    left, right = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    difference = right - left
    same = np.isclose(left, right, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE) | (
        np.isnan(left) & np.isnan(right)
    )
    index = list(a.index[~same])
    finite = difference[np.isfinite(difference)]
    size = np.abs(np.where(np.isfinite(difference), difference, np.inf))
    size[same] = -1.0  # unchanged rows never listed
    order = np.argsort(-size, kind="stable")[: min(SHOWN_ROWS, len(index))]
    shown = [
        {
            "row": _plain(a.index[i]),
            "a": float(left[i]),
            "b": float(right[i]),
            "difference": float(difference[i]),
        }
        for i in order
    ]
    histogram, stats = None, {}
    if finite.size:
        counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
        histogram = {"edges": edges.tolist(), "counts": counts.tolist()}
        absolute = np.abs(finite)
        stats = {
            "mean": float(finite.mean()),
            "mean_abs": float(absolute.mean()),
            "max_abs": float(absolute.max()),
            "p50": float(np.percentile(finite, 50)),
            "p99": float(np.percentile(finite, 99)),
        }
    return OutputChanges(output, "numeric", len(a), index, shown, [], histogram, stats)


def _label(value: Any) -> Any:
    """A label as JSON can say it (numpy scalars become Python ones; NaN stays comparable)."""
    if isinstance(value, float) and np.isnan(value):
        return None
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return str(list(value))
    return value
