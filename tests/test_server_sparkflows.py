"""The Sparkflows way of running a score workflow, end to end: a real `jupyter server`
started by the test, the Sparkflows execute request sent with curl and the server's token,
the job forked from the server's warm scorer and run on Spark with the request's Spark
settings and jars, its scored output, and the success e-mail received by a real SMTP server
(aiosmtpd) through the server's SMTP traitlets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from _endpoint_helpers import free_port
from _files import wait_until
from _smtp import Inbox, received, running_smtp_server
from conftest import FAST_SAVE, require_component

from jupyter_sparkserve import processes
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.spark import spark_available
from jupyter_sparkserve.warm import client as warm_client
from jupyter_sparkserve.warm import protocol
from jupyter_sparkserve.workflows import Workflows

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
TOKEN = "sparkflows-test-token"
SENDER = "jobs@example.com"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with running_smtp_server() as found:
        yield found


@pytest.fixture
def warm_scorers(warm_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The product's default: a Jupyter server keeps a warm scorer."""
    monkeypatch.setenv(protocol.MODE_ENV, "auto")
    return warm_run_dir


@pytest.fixture
def jupyter_server(tmp_path: Path, inbox: tuple[Inbox, int], warm_scorers: Path) -> Iterator[str]:
    """A `jupyter server` on a free port with the extension and the SMTP settings as
    traitlets; yields its URL. It shares SPARKSERVE_HOME with the test."""
    port = free_port()
    root = tmp_path / "notebooks"
    root.mkdir()
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 (closed below)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    for name in [n for n in env if n.startswith("SPARKSERVE_SMTP_")]:
        del env[name]  # the traitlets alone must carry the SMTP settings
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.jpserver_extensions=jupyter_sparkserve=True",
            "--SparkserveApp.smtp_host=127.0.0.1",
            f"--SparkserveApp.smtp_port={inbox[1]}",
            f"--SparkserveApp.smtp_sender=Sparkserve <{SENDER}>",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while curl("GET", f"{url}/sparkserve/api/v1/status")[0] != 200:
            assert server.poll() is None, (tmp_path / "jupyter.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "jupyter server did not come up"
            time.sleep(0.5)
        yield url
    finally:
        scorer = warm_client.status()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        if scorer is not None:  # it stops with the server that started it
            wait_until(lambda: not processes.pid_alive(scorer["pid"]), timeout=30)


def curl(method: str, url: str, body: object = None) -> tuple[int, object]:
    """Status and decoded JSON of one curl call with the Jupyter token."""
    command = ["curl", "-sS", "-X", method, url, "-H", f"Authorization: token {TOKEN}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    command += ["-w", "\n%{http_code}"]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=60)
    text, _, status = ran.stdout.rpartition("\n")
    if not status.isdigit() or status == "000":  # not listening yet
        return 0, None
    return int(status), json.loads(text) if text.strip() else None


def test_the_sparkflows_execute_request(
    jupyter_server: str,
    inbox: tuple[Inbox, int],
    repo: ModelRepository,
    iris,
    iris_model,
    tmp_path: Path,
) -> None:
    require_component(
        "Spark", spark_available(), "pip install pyspark and a Java 17 runtime (.ci/run does)"
    )
    features, _ = iris
    repo.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
    repo.set_alias("iris:1", "champion")
    source = tmp_path / "notebooks" / "customers.csv"  # in the server's root_dir
    features.to_csv(source, index=False)
    # A workflow as Sparkflows users save them: Spark, its paths left to each run's --var.
    workflow = Workflows(repo).create(
        {
            "model": "iris@champion",
            "input": "${inputPath}",
            "output": "${outputPath}",
            "output_format": "parquet",
            "engine": "spark",
        },
        name="score customers",
    )
    jar = tmp_path / "notebooks" / "extra-udfs.jar"
    with zipfile.ZipFile(jar, "w") as archive:  # a jar is a zip; Spark only adds it
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    output = tmp_path / "notebooks" / "scored"
    wait_until(lambda: warm_client.status() is not None, timeout=120)
    scorer = warm_client.status()
    assert scorer["parent_pid"] is not None and scorer["idle_timeout"] == 0

    # The request as Sparkflows sends it: every field a string, "" for a field not used.
    status, answer = curl(
        "POST",
        f"{jupyter_server}/sparkserve/api/v1/workflow/execute",
        {
            "workflowId": str(workflow.id),
            "programParameters": f"--var inputPath={source} --var outputPath={output}",
            "sparkConfig": "--master local[1] --driver-memory 1g "
            "--conf spark.sql.shuffle.partitions=1",
            "libJars": str(jar),
            "emailOnSuccess": "analyst@example.com",
            "emailOnFailure": "",
        },
    )
    assert status == 202, answer
    job_id = answer["jobId"]
    assert answer["job"]["spec"]["spark_config"] == {
        "spark.master": "local[1]",
        "spark.driver.memory": "1g",
        "spark.sql.shuffle.partitions": "1",
    }
    assert answer["job"]["spec"]["input"] == str(source)
    assert answer["job"]["spec"]["lib_jars"] == [str(jar)]

    deadline = time.monotonic() + 400
    while True:
        status, job = curl("GET", f"{jupyter_server}/sparkserve/api/v1/jobs/{job_id}")
        assert status == 200, job
        if job["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(1)
    _, log = curl("GET", f"{jupyter_server}/sparkserve/api/v1/jobs/{job_id}/log?tail=40")
    assert job["status"] == "succeeded", (job["error"], log["log"])
    assert job["rows_done"] == len(features)
    assert f"(forked by the warm scorer as pid {job['pid']})" in log["log"]

    scored = pd.read_parquet(output).sort_values(list(features.columns)).reset_index(drop=True)
    expected = features.assign(prediction=iris_model.predict(features))
    expected = expected.sort_values(list(features.columns)).reset_index(drop=True)
    assert scored["prediction"].tolist() == expected["prediction"].tolist()

    deadline = time.monotonic() + 60
    while not inbox[0].envelopes:
        assert time.monotonic() < deadline, ("no mail came", log["log"])
        time.sleep(0.2)
    (envelope,) = inbox[0].envelopes
    assert envelope.rcpt_tos == ["analyst@example.com"]
    assert envelope.mail_from == SENDER
    mail = received(envelope)
    assert mail["Subject"].startswith(f"[sparkserve] job {job_id} succeeded")
    assert f"workflow {workflow.id} (score customers)" in mail.get_payload()
