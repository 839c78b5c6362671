"""The live monitor against one real local endpoint under real load: the parsing and window
math (`monitor/`), `%sfmonitor` in a real kernel (its widget's figures on iopub, its polling
stopped by a closed widget and by views gone silent), and `GET deployments/{id}/metrics`.

One endpoint serves the whole module (token-protected, as /metrics then needs the token): its
home is every test's home here, so the kernel and the Jupyter server see the deployment."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)
from _lab import browser as browser  # the fixture, for the browser check
from test_magics import PRELUDE, Kernel

from jupyter_sparkserve.config import ENDPOINT_TOKEN_ENV, Settings
from jupyter_sparkserve.deploy.deployments import Deployment, Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.deploy.targets import get_target
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.lifecycle import Action, deployment_actions, deployment_unavailable
from jupyter_sparkserve.monitor import (
    MetricsSource,
    MetricsUnreachable,
    Monitor,
    metrics_url,
    quantile,
    source_for,
)
from jupyter_sparkserve.monitor.prometheus import parse
from jupyter_sparkserve.repository import ModelRepository

TOKEN = "monitor-test-token"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
GOOD = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}


@pytest.fixture(scope="module")
def live_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitor") / "sparkserve-home"


@pytest.fixture(autouse=True)
def home(live_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test here works in the module's home (conftest's `home` made per module)."""
    monkeypatch.setenv("SPARKSERVE_HOME", str(live_home))
    monkeypatch.setenv("SPARKSERVE_WARM_SCORER", "off")
    for variable in ("SPARKSERVE_DATABASE_URL", "SPARKSERVE_ARTIFACT_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return live_home


@pytest.fixture(scope="module")
def endpoint(live_home: Path, mlflow_model_dir: Path) -> Iterator[Deployment]:
    """iris:1 on a local, token-protected endpoint for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPARKSERVE_HOME", str(live_home))
        patch.setenv("SPARKSERVE_WARM_SCORER", "off")
        for variable in ("SPARKSERVE_DATABASE_URL", "SPARKSERVE_ARTIFACT_ROOT"):
            patch.delenv(variable, raising=False)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        repository = ModelRepository(Settings.from_env())
        repository.import_model(mlflow_model_dir, "iris")
        MlflowRegistry(repository).register("iris:1")
        service = Deployments(repository)
        deployment = service.deploy("iris:1", "local", {"token": TOKEN}, environ={})
        assert deployment.status == "running", deployment.error
        yield deployment
        service.undeploy(deployment.id)


class Load:
    """Threads sending requests to the endpoint (a share of them malformed: 400s) until
    stopped; counts what was answered."""

    def __init__(self, url: str, threads: int = 3, bad_every: int = 5) -> None:
        self.url, self.bad_every = f"{url}/invocations", bad_every
        self.sent = self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with requests.Session() as session:
            n = 0
            while not self._stop.is_set():
                n += 1
                bad = n % self.bad_every == 0
                body = {"dataframe_split": {"columns": ["nope"], "data": [[1]]}} if bad else GOOD
                answer = session.post(self.url, json=body, headers=headers, timeout=30)
                with self._lock:
                    self.sent += 1
                    self.failed += answer.status_code >= 400

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def send(url: str, count: int, *, bad: bool = False) -> list[float]:
    """`count` requests one after another; the seconds each took, seen by the client."""
    body = {"dataframe_split": {"columns": ["nope"], "data": [[1]]}} if bad else GOOD
    took = []
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            answer = session.post(
                f"{url}/invocations",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            took.append(time.perf_counter() - started)
            assert (answer.status_code >= 400) is bad, answer.text
    return took


def test_figures_from_the_endpoints_own_metrics(endpoint: Deployment) -> None:
    source = source_for(ModelRepository(Settings.from_env()), endpoint.id, TOKEN)
    assert source.url == f"{endpoint.url}/metrics" and TOKEN not in repr(source)
    monitor = Monitor(source, window_seconds=600)

    # Known traffic between two reads: exact counts, the latency inside what clients saw.
    monitor.poll()
    took = send(endpoint.url, 40) + send(endpoint.url, 10, bad=True)
    exact = monitor.poll()
    assert (exact.requests, exact.errors) == (50, 10)
    assert exact.error_rate == pytest.approx(0.2)
    # One after another: each predict call took one request's rows (2, or the bad one's 1).
    assert exact.batches == 50 and exact.mean_batch_rows == pytest.approx(90 / 50)
    assert [(bar.label, bar.count) for bar in exact.batch_rows if bar.count] == [
        ("1", 10),
        ("2", 40),
    ]
    assert [(bar.label, bar.count) for bar in exact.batch_requests if bar.count] == [("1", 50)]
    assert 0 < exact.p50_ms <= exact.p99_ms <= max(took) * 1000 * 2.5
    assert exact.p50_ms <= sorted(took)[len(took) // 2] * 1000 * 2.5

    # The monitor's own /metrics reads are not traffic.
    quiet = Monitor(source, window_seconds=600)
    quiet.poll()
    for _ in range(3):
        idle = quiet.poll()
    assert (idle.requests, idle.requests_per_second, idle.p50_ms) == (0, 0.0, None)

    # Under load from three clients: the rate between reads follows what they sent.
    moving = Monitor(source, window_seconds=600)
    with Load(endpoint.url) as load:
        time.sleep(0.5)
        before, start = load.sent, moving.poll()
        for _ in range(4):
            time.sleep(0.5)
            figures = moving.poll()
        after = load.sent
    assert start.requests_per_second is None  # one read: no span yet
    assert len(figures.history) == 4 and all(rate > 0 for rate in figures.history)
    assert abs(figures.requests - (after - before)) <= 6  # requests in flight at each read
    assert figures.requests_per_second == pytest.approx(
        figures.requests / figures.window_seconds, rel=1e-2
    )
    assert figures.error_rate == pytest.approx(0.2, abs=0.08)
    assert figures.p99_ms >= figures.p50_ms > 0

    # A window shorter than the reads keeps only the last ones.
    short = Monitor(source, window_seconds=1.0)
    for _ in range(4):
        short.poll()
        time.sleep(0.4)
    assert short.poll().window_seconds <= 1.0 + 0.1


def test_histogram_quantiles_and_text_format() -> None:
    buckets = ((0.01, 10.0), (0.05, 90.0), (0.1, 100.0), (float("inf"), 100.0))
    assert quantile(buckets, 0.5) == pytest.approx(0.01 + 0.04 * 40 / 80)
    assert quantile(buckets, 0.05) == pytest.approx(0.005)
    assert quantile(((0.1, 0.0), (float("inf"), 3.0)), 0.99) == 0.1  # past the last bound
    assert quantile(((0.1, 0.0),), 0.5) is None
    samples = parse('# HELP x y\nx_total{path="/a",status="200"} 3\ny 1.5e3\n')
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("x_total", {"path": "/a", "status": "200"}, 3.0),
        ("y", {}, 1500.0),
    ]
    with pytest.raises(InvalidInput, match="Line 1"):
        parse("not a sample line at all {")


def test_refusals_say_why_and_never_show_the_token(
    endpoint: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = ModelRepository(Settings.from_env())
    monkeypatch.delenv(ENDPOINT_TOKEN_ENV, raising=False)
    with pytest.raises(InvalidInput, match=ENDPOINT_TOKEN_ENV):
        source_for(repository, endpoint.id)
    wrong = MetricsSource(metrics_url(endpoint.url), endpoint.id, "not-the-token")
    with pytest.raises(MetricsUnreachable, match="refused the bearer token") as refused:
        Monitor(wrong).poll()
    assert "not-the-token" not in str(refused.value)
    for cloud in ("sagemaker", "azureml"):
        why = get_target(cloud).metrics_unreachable
        assert "cannot be read from here" in why
        # A running cloud deployment does not offer Monitor: greyed with that reason.
        assert Action.MONITOR not in deployment_actions("running", why)
        assert (Action.MONITOR, why) in deployment_unavailable("running", why)
    assert Action.MONITOR in deployment_actions("running")
    assert Action.MONITOR in endpoint.actions
    assert Action.MONITOR not in deployment_actions("starting")


# ----------------------------------------------------------------------------------- kernel


def comm_messages(kernel: Kernel, seconds: float) -> list[dict[str, Any]]:
    """The comm messages the kernel publishes on iopub during `seconds`."""
    found, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = kernel.client.get_iopub_msg(timeout=left)
        except Exception:  # queue.Empty: nothing more within the time
            break
        if message["msg_type"] in ("comm_open", "comm_msg"):
            found.append(message["content"])
    return found


def figures_in(messages: list[dict[str, Any]], comm_id: str) -> list[dict[str, Any]]:
    return [
        m["data"]["state"]["figures"]
        for m in messages
        if m["comm_id"] == comm_id and "figures" in m.get("data", {}).get("state", {})
    ]


def report_shown(kernel: Kernel, monitor_id: str) -> None:
    """What jupyter_sparkserve's JupyterLab extension sends while the monitor is rendered."""
    message = kernel.client.session.msg(
        "comm_open",
        {
            "comm_id": uuid.uuid4().hex,
            "target_name": "sparkserve.monitor",
            "data": {"alive": [monitor_id]},
        },
    )
    kernel.client.shell_channel.send(message)


def start_monitor(kernel: Kernel, line: str) -> tuple[str, str]:
    """Run `%sfmonitor` (without waiting for its outputs) and answer the widget's comm id and
    monitor id."""
    kernel.client.execute(line)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        message = kernel.client.get_iopub_msg(timeout=60)
        content = message["content"]
        if message["msg_type"] == "error":
            pytest.fail(str(content))
        if message["msg_type"] == "comm_open":
            classes = content["data"]["state"].get("_dom_classes", [])
            (own,) = [c for c in classes if c.startswith("jp-SparkserveMonitor-id-")] or [None]
            if own is not None:
                return content["comm_id"], own.removeprefix("jp-SparkserveMonitor-id-")
    pytest.fail("no monitor widget was opened")


def test_sfmonitor_in_a_kernel_moves_and_stops(endpoint: Deployment, live_home: Path) -> None:
    kernel = Kernel(
        env={
            **__import__("os").environ,
            "SPARKSERVE_HOME": str(live_home),
            ENDPOINT_TOKEN_ENV: TOKEN,
        },
        cwd=live_home.parent,
    )
    try:
        kernel.ok(PRELUDE)
        comm_id, monitor_id = start_monitor(kernel, f"%sfmonitor {endpoint.id} --interval 0.5")
        with Load(endpoint.url):
            for _ in range(4):
                report_shown(kernel, monitor_id)
                seen = comm_messages(kernel, 1.5)
        figures = figures_in(seen, comm_id)
        assert len(figures) >= 3, seen
        counts = [f["requests"] for f in figures]
        assert counts == sorted(counts) and counts[-1] > counts[0] > 0  # the counters move
        assert figures[-1]["requests_per_second"] > 0 and figures[-1]["p99_ms"] > 0
        assert len(figures[-1]["history"]) > len(figures[0]["history"])

        # The frontend closes the widget: polling stops, nothing more is published for it.
        kernel.client.shell_channel.send(
            kernel.client.session.msg("comm_close", {"comm_id": comm_id, "data": {}})
        )
        comm_messages(kernel, 1.5)
        assert figures_in(comm_messages(kernel, 2.0), comm_id) == []
        assert not kernel.value(
            "[t.name for t in __import__('threading').enumerate() "
            "if t.name.startswith('sparkserve-monitor-')]"
        )

        # Views that stop reporting (output cleared, notebook closed): polling stops, saying so.
        kernel.ok(
            "import jupyter_sparkserve.magics.monitor_widget as w; w.VIEW_SILENCE_SECONDS = 1.5"
        )
        comm_id, monitor_id = start_monitor(kernel, f"%sfmonitor {endpoint.id} --interval 0.3")
        report_shown(kernel, monitor_id)
        states = [m["data"]["state"] for m in comm_messages(kernel, 4.0) if m["comm_id"] == comm_id]
        assert any(s.get("stopped") == "Stopped: no view of it is shown any more." for s in states)
        assert figures_in(comm_messages(kernel, 1.5), comm_id) == []

        # A missing token is said in the cell, without a traceback.
        kernel.ok(f"import os\ndel os.environ['{ENDPOINT_TOKEN_ENV}']")
        refused = kernel.run(f"%sfmonitor {endpoint.id}")
        assert ENDPOINT_TOKEN_ENV in "".join(refused["stderr"]) + str(refused["error"])
    finally:
        kernel.close()


# ------------------------------------------------------------------------------------- REST


async def test_metrics_route(
    api: Api, endpoint: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setenv(ENDPOINT_TOKEN_ENV, TOKEN)
    path = f"deployments/{endpoint.id}/metrics"
    first = await api("GET", path, params={"window": 1})
    assert first.status == 200 and first.body["figures"]["requests_per_second"] is None
    with Load(endpoint.url):
        await asyncio.sleep(1.5)
    later = await api("GET", path, params={"window": 1})
    assert later.body["figures"]["requests_per_second"] > 0
    assert later.body["figures"]["requests"] > 0
    listed = await api("GET", f"deployments/{endpoint.id}")
    assert "monitor" in listed.body["actions"]

    assert (await api("GET", "deployments/nope/metrics")).status == 404
    assert (await api("GET", path, params={"window": 0})).status == 400
    monkeypatch.delenv(ENDPOINT_TOKEN_ENV)
    from jupyter_sparkserve.server.deployments import MONITORS

    MONITORS._monitors.clear()  # a new reader: the pool's monitor would still hold the token
    refused = await api("GET", path)
    assert refused.status == 400 and ENDPOINT_TOKEN_ENV in refused.message


# ---------------------------------------------------------------------------------- browser


def test_the_sidebars_monitor_shows_a_moving_rate(
    browser: Any, endpoint: Deployment, live_home: Path, tmp_path: Path
) -> None:
    from _lab import SIDEBAR, SIDEBAR_TAB, open_lab, start_lab, stop_lab

    lab = start_lab(tmp_path, live_home, env={ENDPOINT_TOKEN_ENV: TOKEN})
    try:
        page, _ = open_lab(browser, lab)
        page.locator(SIDEBAR_TAB).wait_for(timeout=90_000)
        page.locator(SIDEBAR_TAB).click()
        row = page.locator(f'{SIDEBAR} [data-testid="sparkserve-deployment"]')
        monitor = row.get_by_role("button", name=f"Monitor {endpoint.ref}")
        monitor.click()
        rps = page.locator('[data-testid="sparkserve-monitor-rps"]')
        rps.wait_for(timeout=30_000)
        seen = set()
        with Load(endpoint.url):
            deadline = time.monotonic() + 30
            while len(seen) < 3 and time.monotonic() < deadline:
                text = rps.inner_text()
                if text not in ("-", "0.0"):
                    seen.add(text)
                time.sleep(0.5)
            assert len(seen) >= 3, seen  # req/s moves while the load runs

    finally:
        stop_lab(lab)
