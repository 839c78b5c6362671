"""Payload capture: real endpoints (the local target's own process) writing Parquet beside
them while clients are answered; `sparkserve capture` exporting and purging it."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from jupyter_sparkserve.deploy.local_target import CAPTURE_FOLDER, LocalTarget
from jupyter_sparkserve.deploy.targets import StartRequest
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.capture import captured_files, read_captured
from jupyter_sparkserve.warm import client, protocol

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


class Endpoint:
    """A local target's endpoint serving the iris model with `options`, in its own folder."""

    def __init__(self, model_dir: Path, workdir: Path, options: Mapping[str, Any]) -> None:
        self.target = LocalTarget()
        self.workdir = workdir
        request = StartRequest(
            "capture-test", model_dir, workdir, self.target.parse_options(options), "iris:1"
        )
        started = self.target.start(request)
        self.url, self.details = started.url, started.details
        self.session = requests.Session()

    @property
    def capture(self) -> Path:
        return self.workdir / CAPTURE_FOLDER

    def score(self, rows: list[list[float]], session: requests.Session | None = None) -> Any:
        body = {"dataframe_split": {"columns": COLUMNS, "data": rows}}
        answer = (session or self.session).post(f"{self.url}/invocations", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]

    def stop(self) -> None:
        """As Undeploy does: SIGTERM, the endpoint writes what it queued and exits."""
        self.target.stop(self.details)

    def log(self) -> str:
        return (self.workdir / "log").read_text()


@pytest.fixture(scope="module")
def warm_scorer() -> Iterator[None]:
    """One warm scorer for the module: each endpoint is forked from it in a fraction of a
    second instead of spawned (seconds of imports), its settings passed the same way."""
    folder = Path(tempfile.mkdtemp(prefix="ss-warm-"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(protocol.RUN_DIR_ENV, str(folder))
        client.start(idle_timeout=600)
        yield
        client.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def use_warm(warm_scorer: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(protocol.MODE_ENV, "use")  # `home` turned it off for each test


@pytest.fixture
def serve(mlflow_model_dir: Path, tmp_path: Path, use_warm: None) -> Iterator[Any]:
    started: list[Endpoint] = []

    def start(**options: Any) -> Endpoint:
        endpoint = Endpoint(mlflow_model_dir, tmp_path / f"deployment-{len(started)}", options)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.stop()


def rows(count: int, generator: random.Random) -> list[list[float]]:
    return [[round(generator.uniform(0, 8), 6) for _ in COLUMNS] for _ in range(count)]


def test_64_clients_at_full_capture_lose_no_request(serve: Any) -> None:
    endpoint = serve(capture=True)
    generator = random.Random(17)
    sent = [rows(generator.randint(1, 3), generator) for _ in range(64 * 12)]

    def client(batch: list[list[list[float]]]) -> list[Any]:
        with requests.Session() as session:
            return [endpoint.score(request, session) for request in batch]

    with ThreadPoolExecutor(64) as pool:
        answered = [p for a in pool.map(client, [sent[i::64] for i in range(64)]) for p in a]
    endpoint.stop()  # the last requests are written on the way out

    captured = read_captured(endpoint.capture)
    ordered = [request for i in range(64) for request in sent[i::64]]
    expected = pd.DataFrame([row for request in ordered for row in request], columns=COLUMNS)
    expected["__prediction"] = [value for answer in answered for value in answer]
    key = [*COLUMNS]
    got = captured[[*COLUMNS, "__prediction"]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.sort_values(key).reset_index(drop=True))
    assert captured["__request_id"].nunique() == len(sent)
    assert (captured["__status"] == 200).all() and (captured["__latency_ms"] > 0).all()
    assert str(captured["__time"].dtype) == "datetime64[ns, UTC]"
    assert not [p.name for p in endpoint.capture.iterdir() if p.name.startswith(".")]


def test_sampling_and_the_size_cap(serve: Any) -> None:
    sampled = serve(capture=True, capture_sample=0.3)
    generator = random.Random(3)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(sampled.score, [rows(1, generator) for _ in range(400)]))
    sampled.stop()
    requests_kept = read_captured(sampled.capture)["__request_id"].nunique()
    assert 90 <= requests_kept <= 150  # 120 expected; 3.3 standard deviations either side

    capped = serve(capture=True, capture_max_mb=1)
    big = [rows(8000, generator) for _ in range(3)]
    seen: set[str] = set()
    for _ in range(4):  # four files of about 420 kB (compressed JSON): 1.7 MB in all
        for request in big:
            capped.score(request)
        seen |= _a_new_file(capped, seen)
    capped.stop()
    files = captured_files(capped.capture)
    total = sum(path.stat().st_size for path in files)
    assert total <= 1024 * 1024 or len(files) == 1, [p.stat().st_size for p in files]
    assert len(files) < len(seen) == 4
    kept = read_captured(capped.capture)["__request_id"].nunique()
    assert 1 <= kept < 12  # the oldest requests rotated out, the newest kept


def _a_new_file(endpoint: Endpoint, seen: set[str]) -> set[str]:
    """The capture files once one not in `seen` appears (the newest is never rotated out)."""
    deadline = time.monotonic() + 20
    while True:
        names = {path.name for path in captured_files(endpoint.capture)}
        if names - seen:
            return names
        assert time.monotonic() < deadline, "no capture file was written"
        time.sleep(0.05)


def test_capture_off_writes_nothing_and_a_failing_writer_fails_no_answer(
    serve: Any, tmp_path: Path
) -> None:
    generator = random.Random(5)
    off = serve()
    for _ in range(20):
        off.score(rows(2, generator))

    # A capture folder that cannot be made (its parent is a file), even for root.
    blocked = serve(capture=True)
    blocked.workdir.mkdir(parents=True, exist_ok=True)
    (blocked.workdir / CAPTURE_FOLDER).write_text("a file where the folder would be")
    sent = [rows(3, generator) for _ in range(50)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(blocked.score, sent))
    assert answers == [off.score(request) for request in sent]  # as without capture
    blocked.stop()
    assert "sparkserve capture: could not write" in blocked.log()
    off.stop()
    assert not off.capture.exists()


def test_cli_exports_and_purges_a_deployments_capture(
    repo: ModelRepository, registered: str, tmp_path: Path, use_warm: None
) -> None:
    from jupyter_sparkserve.cli import main
    from jupyter_sparkserve.deploy.deployments import Deployments

    service = Deployments(repo)
    deployment = service.deploy(registered, "local", {"capture": True})
    generator = random.Random(11)
    url = f"{deployment.url}/invocations"
    with requests.Session() as session:
        for _ in range(4):
            body = {"dataframe_split": {"columns": COLUMNS, "data": rows(2, generator)}}
            assert session.post(url, json=body).status_code == 200
        # Records and CSV are read back into the same columns.
        records = pd.DataFrame(rows(1, generator), columns=COLUMNS)
        body = {"dataframe_records": records.to_dict(orient="records")}
        assert session.post(url, json=body).status_code == 200
        table = pd.DataFrame(rows(2, generator), columns=COLUMNS)
        csv_body = table.to_csv(index=False)
        answer = session.post(url, data=csv_body, headers={"Content-Type": "text/csv"})
        assert answer.status_code == 200, answer.text
    service.undeploy(deployment.id)
    folder = repo.settings.home / "deployments" / deployment.id / CAPTURE_FOLDER

    runner = CliRunner()
    out = tmp_path / "captured.parquet"
    exported = runner.invoke(main, ["capture", deployment.id, "--out", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    summary = json.loads(exported.output)
    assert (summary["requests"], summary["rows"], summary["purged"]) == (6, 11, False)
    captured = read_captured(folder)
    pd.testing.assert_frame_equal(pd.read_parquet(out), captured)
    sent_last = pd.concat([records, table], ignore_index=True)
    pd.testing.assert_frame_equal(captured[COLUMNS].tail(3).reset_index(drop=True), sent_last)

    csv = tmp_path / "captured.csv"
    purged = runner.invoke(main, ["capture", deployment.id, "--out", str(csv), "--purge"])
    assert purged.exit_code == 0, purged.output
    assert "Purged" in purged.output and len(pd.read_csv(csv)) == 11
    assert not folder.exists()

    wrong = runner.invoke(main, ["capture", deployment.id, "--out", str(tmp_path / "x.xlsx")])
    assert wrong.exit_code != 0 and "Export to a .parquet or .csv file" in wrong.output
