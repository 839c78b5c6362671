"""The live monitor of an endpoint: its `/metrics` read over and over (`endpoint.py`), parsed
(`prometheus.py`) and turned into req/s, latency quantiles, the error rate and batch sizes
over the last minutes (`window.py`). `%sfmonitor`, `GET deployments/{id}/metrics` and the
sidebar's Monitor view show these figures."""

from .endpoint import (
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    MetricsSource,
    MetricsUnavailable,
    MetricsUnreachable,
    Monitor,
    MonitorPool,
    metrics_url,
    source_for,
)
from .window import Bar, Figures, Snapshot, figures, quantile

__all__ = [
    "DEFAULT_INTERVAL_SECONDS",
    "DEFAULT_WINDOW_SECONDS",
    "Bar",
    "Figures",
    "MetricsSource",
    "MetricsUnavailable",
    "MetricsUnreachable",
    "Monitor",
    "MonitorPool",
    "Snapshot",
    "figures",
    "metrics_url",
    "quantile",
    "source_for",
]
