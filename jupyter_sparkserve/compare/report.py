"""The comparison report: two prediction sets over the same rows, whatever produced them
(two versions scored now, or a shadow's recorded pairs), turned into one JSON-ready object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .differences import OutputChanges, compare_output
from .drift import Drift
from .predict import Predictions


@dataclass(frozen=True)
class Latency:
    """What one side's calls took (batches in process, requests to an endpoint)."""

    label: str
    via: str
    calls: int
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    failures: int = 0

    @classmethod
    def of(cls, predictions: Predictions) -> Latency:
        values = np.asarray(predictions.latency_ms, dtype=float)
        values = values[np.isfinite(values)]
        figures = (
            (float(np.percentile(values, 50)), float(np.percentile(values, 99)), values.mean())
            if values.size
            else (None, None, None)
        )
        p50, p99, mean = figures
        return cls(
            predictions.label,
            predictions.via,
            int(values.size),
            p50,
            p99,
            None if mean is None else float(mean),
            predictions.failures,
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CompareReport:
    a: str  # what the report calls side A (a ref, or "primary")
    b: str
    source: str  # where the rows came from
    rows: int
    outputs: list[OutputChanges]
    latency: list[Latency]  # A's, then B's
    drift: list[Drift]  # one per distinct input example of the versions (or why none)
    notes: list[str] = field(default_factory=list)

    @property
    def changed_rows(self) -> list[Any]:
        """Rows where any output changed, in row order."""
        changed: set[Any] = set()
        for output in self.outputs:
            changed.update(output.changed_index)
        return sorted(changed, key=lambda row: (str(type(row)), row))

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "source": self.source,
            "rows": self.rows,
            "changed_rows": len(self.changed_rows),
            "outputs": [output.to_dict() for output in self.outputs],
            "latency": [side.to_dict() for side in self.latency],
            "drift": [report.to_dict() for report in self.drift],
            "notes": self.notes,
        }

    def summary(self) -> str:
        """One line per output, as the CLI and the magic say it."""
        lines = [f"{self.a} vs {self.b} on {self.rows:,} rows ({self.source}):"]
        for output in self.outputs:
            lines.append(
                f"  {output.output}: {output.changed:,} of {output.rows:,} rows changed "
                f"({output.changed_share:.1%})"
                + (
                    f", largest |B - A| {output.stats['max_abs']:.4g}"
                    if output.kind == "numeric" and output.stats
                    else ""
                )
            )
        for side in self.latency:
            if side.p50_ms is not None:
                lines.append(
                    f"  {side.label}: p50 {side.p50_ms:.2f} ms, p99 {side.p99_ms:.2f} ms over "
                    f"{side.calls:,} calls ({side.via})"
                )
        for report in self.drift:
            worst = max(report.columns, key=lambda c: c.psi, default=None)
            if worst is not None:
                lines.append(
                    f"  drift from the input example of {report.of}: largest PSI "
                    f"{worst.psi:.3f} ({worst.column}, {worst.level})"
                )
            if report.note:
                lines.append(f"  {report.note}")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def build_report(
    a: Predictions,
    b: Predictions,
    *,
    source: str,
    drift: list[Drift] | None = None,
    notes: list[str] | None = None,
) -> CompareReport:
    """Compare the outputs both sides answered, row by row (their indexes must match)."""
    if len(a.frame) != len(b.frame) or not a.frame.index.equals(b.frame.index):
        raise InvalidInput(
            f"{a.label} answered {len(a.frame):,} rows and {b.label} {len(b.frame):,}: "
            "a comparison needs one answer per row from each."
        )
    notes = list(notes or [])
    shared = [name for name in a.frame.columns if name in b.frame.columns]
    for side, other in ((a, b), (b, a)):
        only = [str(name) for name in side.frame.columns if name not in other.frame.columns]
        if only:
            notes.append(f"Only {side.label} answers {', '.join(only)}: not compared.")
    if not shared:
        raise InvalidInput(f"{a.label} and {b.label} share no output to compare.")
    outputs = [compare_output(str(name), a.frame[name], b.frame[name]) for name in shared]
    return CompareReport(
        a=a.label,
        b=b.label,
        source=source,
        rows=len(a.frame),
        outputs=outputs,
        latency=[Latency.of(a), Latency.of(b)],
        drift=list(drift or []),
        notes=notes,
    )
