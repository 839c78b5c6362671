"""Input drift of the compared rows against a version's input example (saved in its MLmodel):
the population stability index of each column, over quantile bins of the example for
numbers and over the example's categories for the rest."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

QUANTILE_BINS = 10
SMALLEST_SHARE = 1e-4  # an empty bin's share: PSI's log needs one on both sides
SMALL_EXAMPLE_ROWS = 30  # fewer example rows than this make every PSI rough
MISSING = "(missing)"
UNSEEN = "(not in the example)"
# The usual reading of PSI: below 0.1 stable, up to 0.25 a moderate shift, above a major one.
LEVELS = ((0.1, "stable"), (0.25, "moderate"), (float("inf"), "major"))


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # "numeric" or "categorical"
    psi: float
    bins: list[str]
    example_shares: list[float]
    rows_shares: list[float]

    @property
    def level(self) -> str:
        return next(name for limit, name in LEVELS if self.psi < limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "psi": self.psi,
            "level": self.level,
            "bins": self.bins,
            "example_shares": self.example_shares,
            "rows_shares": self.rows_shares,
        }


@dataclass(frozen=True)
class Drift:
    """The drift from one input example (the versions in `refs` were all saved with it);
    `note` says why there is none, or why it is rough."""

    refs: tuple[str, ...]
    example_rows: int
    columns: list[ColumnDrift]
    note: str = ""

    @property
    def of(self) -> str:
        """`iris:1`, or `iris:1 and iris:2`: whose input example it is."""
        return " and ".join(self.refs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "refs": list(self.refs),
            "example_rows": self.example_rows,
            "columns": [column.to_dict() for column in self.columns],
            "note": self.note,
        }


def input_example(model_path: Path) -> pd.DataFrame | None:
    """The version's saved input example as a DataFrame, or None when it has none (or one
    that is no table, such as a tensor)."""
    from mlflow.models import Model

    model = Model.load(str(model_path / "MLmodel"))
    if model.saved_input_example_info is None:
        return None
    example = model.load_input_example(str(model_path))
    if isinstance(example, pd.DataFrame):
        return example
    if isinstance(example, dict):
        try:
            return pd.DataFrame(example)
        except ValueError:
            return None
    return None


def drift_against_examples(versions: Sequence[tuple[str, Path]], rows: pd.DataFrame) -> list[Drift]:
    """The rows' drift from each version's input example (ref, model folder), once per
    distinct example: versions saved with the same one share a report."""
    groups: list[tuple[list[str], pd.DataFrame | None]] = []
    for ref, path in versions:
        example = input_example(path)
        same = next(
            (refs for refs, seen in groups if example is not None and _same(seen, example)), None
        )
        if same is None:
            groups.append(([ref], example))
        else:
            same.append(ref)
    return [_drift_from(tuple(refs), example, rows) for refs, example in groups]


def _same(seen: pd.DataFrame | None, example: pd.DataFrame) -> bool:
    return seen is not None and seen.shape == example.shape and seen.equals(example)


def _drift_from(refs: tuple[str, ...], example: pd.DataFrame | None, rows: pd.DataFrame) -> Drift:
    of = " and ".join(refs)
    if example is None:
        return Drift(refs, 0, [], f"{of} has no input example (save it with input_example=...).")
    shared = [name for name in example.columns if name in rows.columns]
    columns = [_column(str(name), example[name], rows[name]) for name in shared]
    notes = []
    if not shared:
        notes.append(f"The rows share no column with the input example of {of}.")
    if len(example) < SMALL_EXAMPLE_ROWS:
        notes.append(
            f"The input example of {of} has only {len(example)} rows: its bins are rough, "
            "read the PSI as a hint."
        )
    return Drift(refs, len(example), columns, " ".join(notes))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(expected, SMALLEST_SHARE, None)
    a = np.clip(actual, SMALLEST_SHARE, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _column(name: str, example: pd.Series, rows: pd.Series) -> ColumnDrift:
    numeric = pd.api.types.is_numeric_dtype(example) and not pd.api.types.is_bool_dtype(example)
    if numeric:
        bins, expected, actual = _numeric_bins(example, pd.to_numeric(rows, errors="coerce"))
    else:
        bins, expected, actual = _category_bins(example, rows)
    bins = [*bins, MISSING]
    if expected[-1] == 0 and actual[-1] == 0:  # no missing values on either side
        bins, expected, actual = bins[:-1], expected[:-1], actual[:-1]
    return ColumnDrift(
        name,
        "numeric" if numeric else "categorical",
        psi(expected, actual),
        bins,
        expected.tolist(),
        actual.tolist(),
    )


def _numeric_bins(example: pd.Series, rows: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    reference = example.to_numpy(dtype=float)
    values = rows.to_numpy(dtype=float)
    known = reference[~np.isnan(reference)]
    inner = np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(known, inner)) if known.size else np.array([])
    labels = [f"≤ {edges[0]:.4g}"] if edges.size else ["all"]
    labels += [f"{low:.4g} to {high:.4g}" for low, high in itertools.pairwise(edges)]
    labels += [f"> {edges[-1]:.4g}"] if edges.size else []
    expected = _shares(_bin_of(reference, edges), len(labels))
    actual = _shares(_bin_of(values, edges), len(labels))
    return labels, expected, actual


def _bin_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin numbers: (-inf, e1] is 0, (e1, e2] is 1, ... and a missing value is -1."""
    bins = np.searchsorted(edges, values, side="left")
    return np.where(np.isnan(values), -1, bins)


def _shares(bins: np.ndarray, count: int) -> np.ndarray:
    """Shares of each bin, then of the missing values (kept when either side has some)."""
    total = max(len(bins), 1)
    shares = np.bincount(bins[bins >= 0], minlength=count)[:count] / total
    return np.append(shares, np.count_nonzero(bins < 0) / total)


def _category_bins(example: pd.Series, rows: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    reference = example.astype("string")
    values = rows.astype("string")
    categories = list(reference.dropna().unique())
    labels = [*categories, UNSEEN]

    def shares(series: pd.Series) -> np.ndarray:
        total = max(len(series), 1)
        counts = series.value_counts()
        known = [counts.get(category, 0) / total for category in categories]
        unseen = series.notna() & ~series.isin(categories)
        return np.array([*known, unseen.sum() / total, series.isna().sum() / total])

    return labels, shares(reference), shares(values)
