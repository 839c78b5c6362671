"""Where a deployment's metrics are read, and the reading: a deployment id resolves to its
endpoint's `/metrics` through the deployments service; a `Monitor` keeps the scrapes of the
last minutes and computes the figures (`window.py`).

`/metrics` of a token-protected endpoint needs `Authorization: Bearer` (only /ping and
/health are open): the token comes from the caller, or SPARKSERVE_ENDPOINT_TOKEN in this
process's environment; it is sent and never logged, echoed or kept in a message.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from ..config import ENDPOINT_TOKEN_ENV
from ..errors import InvalidInput, SparkserveError
from .prometheus import parse
from .window import Figures, Snapshot, figures

if TYPE_CHECKING:
    from ..repository import ModelRepository

DEFAULT_WINDOW_SECONDS = 300.0  # "the last minutes"
DEFAULT_INTERVAL_SECONDS = 2.0  # one /metrics read per 2 s: its cost is in BENCHMARKS.md
SCRAPE_TIMEOUT_SECONDS = 5.0


class MetricsUnavailable(SparkserveError):
    """This deployment's metrics cannot be read from here (its target, or its status)."""

    code = "METRICS_UNAVAILABLE"
    http_status = 409


class MetricsUnreachable(SparkserveError):
    """The endpoint's /metrics did not answer, or answered with an error."""

    code = "METRICS_UNREACHABLE"
    http_status = 502


@dataclass(frozen=True)
class MetricsSource:
    """An endpoint's `/metrics`, with the bearer token it needs (never shown: repr=False)."""

    url: str
    label: str  # what messages call it: the deployment id, or the URL
    token: str | None = field(default=None, repr=False)

    def read(self, session: requests.Session) -> str:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            answer = session.get(self.url, headers=headers, timeout=SCRAPE_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise MetricsUnreachable(
                f"{self.label}: nothing answered at {self.url} ({type(error).__name__}): "
                "is the endpoint still running?"
            ) from None
        if answer.status_code == 401:
            raise MetricsUnreachable(
                f"{self.label}: the endpoint refused the bearer token for /metrics: give the "
                f"token it was deployed with ({ENDPOINT_TOKEN_ENV})."
            )
        if answer.status_code != 200:
            raise MetricsUnreachable(
                f"{self.label}: {self.url} answered HTTP {answer.status_code}, not metrics."
            )
        return answer.text


def source_for(
    repository: ModelRepository, deployment_id: str, token: str | None = None
) -> MetricsSource:
    """The `/metrics` of a running deployment's endpoint. Refused, saying why, for a
    deployment not running, a target whose metrics are not reachable this way (SageMaker,
    AzureML), or a token-protected endpoint when no token is given."""
    from ..deploy.deployments import Deployments

    deployment = Deployments(repository).get(deployment_id)
    if deployment.status != "running":
        raise MetricsUnavailable(
            f"{deployment.id} is {deployment.status}: only a running endpoint has metrics."
        )
    why_not = deployment.metrics_unreachable
    if why_not:
        raise MetricsUnavailable(f"{deployment.id} ({deployment.target}): {why_not}")
    token = token or os.environ.get(ENDPOINT_TOKEN_ENV) or None
    if deployment.details.get("token_required") and not token:
        raise InvalidInput(
            f"{deployment.id}'s endpoint needs a bearer token for /metrics: set "
            f"{ENDPOINT_TOKEN_ENV} to the token it was deployed with (or pass it)."
        )
    return MetricsSource(metrics_url(deployment.url), deployment.id, token)


def metrics_url(url: str) -> str:
    base = url.rstrip("/")
    base = base.removesuffix("/invocations")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not an endpoint URL: give one such as http://host:port.")
    return f"{base}/metrics"


class Monitor:
    """The scrapes of one endpoint over the last `window_seconds`, and their figures."""

    def __init__(
        self,
        source: MetricsSource,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0:
            raise InvalidInput("The window must be a positive number of minutes.")
        self.source = source
        self.window_seconds = window_seconds
        self._clock = clock
        self._snapshots: deque[Snapshot] = deque()
        self._session = requests.Session()
        self._lock = threading.Lock()

    def poll(self) -> Figures:
        """Read /metrics once more and answer the figures over the window."""
        text = self.source.read(self._session)
        snapshot = Snapshot.of(self._clock(), parse(text))
        with self._lock:
            if self._snapshots and snapshot.restarted_since(self._snapshots[-1]):
                self._snapshots.clear()  # a new process: its counters start again
            self._snapshots.append(snapshot)
            # Keep one snapshot at or before the window's start: the baseline of its deltas.
            while (
                len(self._snapshots) > 1
                and snapshot.time - self._snapshots[1].time >= self.window_seconds
            ):
                self._snapshots.popleft()
            return figures(list(self._snapshots), self.window_seconds)

    def close(self) -> None:
        self._session.close()


class MonitorPool:
    """One monitor per watched deployment, for a long-running server: a deployment's monitor
    is made on its first read and dropped once nobody has read it for `idle_seconds`."""

    def __init__(self, idle_seconds: float = 120.0, min_interval_seconds: float = 1.0) -> None:
        self.idle_seconds = idle_seconds
        self.min_interval_seconds = min_interval_seconds
        self._monitors: dict[str, tuple[Monitor, float, Figures | None]] = {}
        self._lock = threading.Lock()

    def read(
        self, deployment_id: str, make: Callable[[], Monitor], window_seconds: float | None = None
    ) -> Figures:
        """The figures now (over `window_seconds`, else the monitor's own window); a read
        within `min_interval_seconds` of the last scrape reuses it (many viewers of one
        deployment cost the endpoint one read)."""
        now = time.monotonic()
        with self._lock:
            for key, (old, last_read, _) in list(self._monitors.items()):
                if now - last_read > self.idle_seconds:
                    old.close()
                    del self._monitors[key]
            entry = self._monitors.get(deployment_id)
        recent = entry is not None and now - entry[1] < self.min_interval_seconds
        if entry is not None and recent and entry[2] is not None:
            return entry[2]
        monitor = entry[0] if entry is not None else make()
        if window_seconds is not None:
            monitor.window_seconds = window_seconds
        try:
            found = monitor.poll()
        except SparkserveError:
            with self._lock:  # a monitor of an endpoint that failed is made anew next time
                self._monitors.pop(deployment_id, None)
            monitor.close()
            raise
        with self._lock:
            self._monitors[deployment_id] = (monitor, now, found)
        return found

    def watched(self) -> list[str]:
        with self._lock:
            return sorted(self._monitors)
