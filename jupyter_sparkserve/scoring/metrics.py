"""Prometheus text-format metrics for one endpoint process (no client library needed)."""

from __future__ import annotations

import bisect
from collections import Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
ROUTES = frozenset({"/invocations", "/ping", "/health", "/version", "/metrics"})


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help_text, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.total:.6f}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class EndpointMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.merging = False
        self.latency = Histogram(
            "sparkserve_request_duration_seconds", "Time to answer an invocation.", LATENCY_BUCKETS
        )
        self.batch_requests = Histogram(
            "sparkserve_batch_requests", "Requests merged into one predict call.", BATCH_BUCKETS
        )
        self.batch_rows = Histogram(
            "sparkserve_batch_rows", "Rows scored by one predict call.", BATCH_BUCKETS
        )

    def record_request(self, path: str, status: int, seconds: float) -> None:
        # Labels only for the routes that exist: any client could invent paths without end.
        self.requests[(path if path in ROUTES else "other", status)] += 1
        if path == "/invocations":
            self.latency.observe(seconds)

    def record_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def render(self) -> bytes:
        lines = [
            "# HELP sparkserve_requests_total Requests answered, by path and status.",
            "# TYPE sparkserve_requests_total counter",
        ]
        for (path, status), count in sorted(self.requests.items()):
            lines.append(f'sparkserve_requests_total{{path="{path}",status="{status}"}} {count}')
        errors = sum(count for (_, status), count in self.requests.items() if status >= 400)
        lines += [
            "# HELP sparkserve_errors_total Requests answered with a 4xx or 5xx status.",
            "# TYPE sparkserve_errors_total counter",
            f"sparkserve_errors_total {errors}",
            "# HELP sparkserve_merging 1 when concurrent requests share predict calls (the"
            " load-time probe found every row's answer independent of its batch mates).",
            "# TYPE sparkserve_merging gauge",
            f"sparkserve_merging {int(self.merging)}",
        ]
        for histogram in (self.latency, self.batch_requests, self.batch_rows):
            lines += histogram.render()
        return ("\n".join(lines) + "\n").encode()
