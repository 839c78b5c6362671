"""The live figures from successive scrapes of one endpoint's `/metrics`: over a sliding
window, requests per second, p50/p99 latency interpolated inside the histogram's buckets (as
Prometheus' `histogram_quantile` does), the error rate and the distribution of batch sizes.

Only `/invocations` counts as traffic: the monitor's own `/metrics` reads must not show up in
what it reports.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .prometheus import Sample, bound

INVOCATIONS = "/invocations"
REQUESTS = "sparkserve_requests_total"
LATENCY = "sparkserve_request_duration_seconds"
BATCH_ROWS = "sparkserve_batch_rows"
BATCH_REQUESTS = "sparkserve_batch_requests"
MERGING = "sparkserve_merging"

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending


@dataclass(frozen=True)
class Snapshot:
    """One scrape's counters, at `time` (seconds, monotonic)."""

    time: float
    requests: float  # answered /invocations
    errors: float  # of those, answered 4xx or 5xx
    latency: Buckets
    batch_rows: Buckets
    batch_requests: Buckets
    rows: float  # rows scored by all predict calls
    merging: bool

    @classmethod
    def of(cls, time: float, samples: Sequence[Sample]) -> Snapshot:
        requests = errors = 0.0
        for sample in samples:
            if sample.name == REQUESTS and sample.labels.get("path") == INVOCATIONS:
                requests += sample.value
                if int(sample.labels.get("status", "0")) >= 400:
                    errors += sample.value
        merging = any(s.name == MERGING and s.value == 1 for s in samples)
        rows = sum(s.value for s in samples if s.name == f"{BATCH_ROWS}_sum")
        return cls(
            time,
            requests,
            errors,
            _buckets(samples, LATENCY),
            _buckets(samples, BATCH_ROWS),
            _buckets(samples, BATCH_REQUESTS),
            rows,
            merging,
        )

    def restarted_since(self, earlier: Snapshot) -> bool:
        """Counters only grow: fewer now means a new endpoint process."""
        return self.requests < earlier.requests or _total(self.batch_rows) < _total(
            earlier.batch_rows
        )


@dataclass(frozen=True)
class Bar:
    label: str  # the sizes the bar counts: "1", "3-4", ">512"
    count: int


@dataclass(frozen=True)
class Figures:
    """What the faces show. None where the window holds no request (no rate, no latency)."""

    window_seconds: float  # the span the figures cover (up to the window asked for)
    requests: int
    requests_per_second: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    error_rate: float | None
    batches: int
    mean_batch_rows: float | None
    batch_rows: list[Bar] = field(default_factory=list)
    batch_requests: list[Bar] = field(default_factory=list)
    history: list[float] = field(default_factory=list)  # req/s between successive scrapes
    merging: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shown(self) -> list[tuple[str, str]]:
        """The figures as labelled text, the same in every face that prints them."""

        def number(value: float | None, unit: str = "", digits: int = 1) -> str:
            return "-" if value is None else f"{value:,.{digits}f}{unit}"

        rate = "-" if self.error_rate is None else f"{self.error_rate:.2%}"
        return [
            ("window", f"{self.window_seconds:.0f} s"),
            ("req/s", number(self.requests_per_second)),
            ("p50", number(self.p50_ms, " ms", 2)),
            ("p99", number(self.p99_ms, " ms", 2)),
            ("errors", f"{rate} ({self.errors} of {self.requests})"),
            ("rows per predict call", number(self.mean_batch_rows)),
            ("merging requests", "yes" if self.merging else "no"),
        ]


def figures(snapshots: Sequence[Snapshot], window_seconds: float) -> Figures:
    """The figures between the newest snapshot and the oldest one within `window_seconds` of
    it (the snapshots in time order, all from one endpoint process)."""
    if not snapshots:
        raise ValueError("figures need at least one snapshot")
    last = snapshots[-1]
    inside = [s for s in snapshots if last.time - s.time <= window_seconds + 1e-9]
    first = inside[0]
    span = last.time - first.time
    requests = last.requests - first.requests
    errors = last.errors - first.errors
    latency = _delta(last.latency, first.latency)
    rows = _delta(last.batch_rows, first.batch_rows)
    batches = _total(rows)
    history = [
        (b.requests - a.requests) / (b.time - a.time)
        for a, b in itertools.pairwise(inside)
        if b.time > a.time
    ]
    return Figures(
        window_seconds=round(span, 3),
        requests=int(requests),
        requests_per_second=requests / span if span > 0 else None,
        p50_ms=_ms(quantile(latency, 0.5)),
        p99_ms=_ms(quantile(latency, 0.99)),
        errors=int(errors),
        error_rate=errors / requests if requests > 0 else None,
        batches=int(batches),
        mean_batch_rows=(last.rows - first.rows) / batches if batches > 0 else None,
        batch_rows=_bars(rows),
        batch_requests=_bars(_delta(last.batch_requests, first.batch_requests)),
        history=history,
        merging=last.merging,
    )


def quantile(buckets: Buckets, q: float) -> float | None:
    """The q-quantile, linear inside the bucket it falls in (the lowest bucket from 0); in
    the +Inf bucket, the highest finite bound. None with no observation."""
    total = _total(buckets)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank and cumulative > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = upper, cumulative
    return lower


def _buckets(samples: Sequence[Sample], name: str) -> Buckets:
    found = [(bound(s.labels["le"]), s.value) for s in samples if s.name == f"{name}_bucket"]
    return tuple(sorted(found))


def _delta(newer: Buckets, older: Buckets) -> Buckets:
    if not older:
        return newer
    before = dict(older)
    return tuple((upper, count - before.get(upper, 0.0)) for upper, count in newer)


def _total(buckets: Buckets) -> float:
    return buckets[-1][1] if buckets else 0.0


def _bars(buckets: Buckets) -> list[Bar]:
    """Counts per bucket (not cumulative), labelled with the sizes each holds."""
    bars, lower, below = [], 0.0, 0.0
    for upper, cumulative in buckets:
        if math.isinf(upper):
            label = f">{lower:g}"
        elif upper - lower > 1:
            label = f"{lower + 1:g}-{upper:g}"
        else:
            label = f"{upper:g}"
        bars.append(Bar(label, int(cumulative - below)))
        lower, below = upper, cumulative
    return bars


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
