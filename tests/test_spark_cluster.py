"""Score workflows on a real Spark standalone cluster (a master and two workers on 127.0.0.1,
started from the pyspark package, `_spark_cluster.py`), run through a real `jupyter server`
with the Sparkflows execute body whose `sparkConfig` names the cluster's master.

The model must reach the executors through Spark (the zip MLflow's `spark_udf` adds to the
context lands in an executor's work folder), `libJars` too; the output must equal the local
engine's row for row; the job's progress and log are there while it runs; the application
is finished on the master when the job ends, and Cancel stops it on the cluster. Executors
that do not share the input's or output's folder with the driver (a worker in its own mount
namespace) make a run fail with a message that says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from _files import wait_until
from _spark_cluster import StandaloneCluster, private_mounts_available, standalone_cluster
from conftest import FAST_SAVE, require_component
from test_server_sparkflows import (  # noqa: F401 (fixtures)
    curl,
    inbox,
    jupyter_server,
    warm_scorers,
)

from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring import spark as spark_engine
from jupyter_sparkserve.scoring.offline import score
from jupyter_sparkserve.warm import client as warm_client
from jupyter_sparkserve.workflows import Workflows

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
API = "sparkserve/api/v1"
APPLICATION = re.compile(r"Spark application (app-[\w-]+) on (spark://\S+)")

# The executors' Python workers cannot import this test module: pickle its model by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class StuckOnExecutors(mlflow.pyfunc.PythonModel):
    """Quick on the few rows the driver samples, then too slow to ever finish."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        if len(model_input) > spark_engine.PROBE_ROWS:
            time.sleep(600)
        return np.zeros(len(model_input))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    require_component(
        "Spark",
        spark_engine.spark_available(),
        "pip install 'jupyter_sparkserve[spark]' and a Java 17 runtime (.ci/run installs both)",
    )
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


@pytest.fixture(scope="session")
def unshared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandaloneCluster, Path]]:
    """A one-worker cluster whose executors see an empty folder where the driver has the
    folder yielded beside it."""
    require_component(
        "Spark",
        spark_engine.spark_available(),
        "pip install 'jupyter_sparkserve[spark]' and a Java 17 runtime (.ci/run installs both)",
    )
    require_component(
        "A private mount namespace",
        private_mounts_available(),
        "run the tests as root, or where `unshare --mount` is allowed",
    )
    hidden = tmp_path_factory.mktemp("driver-only")
    folder = tmp_path_factory.mktemp("unshared-cluster")
    with standalone_cluster(folder, workers=1, hidden=hidden) as running:
        yield running, hidden


def execute(server: str, workflow_id: int, variables: dict[str, Path], body: dict) -> str:
    """Send the Sparkflows execute request; the job's id."""
    parameters = " ".join(f"--var {name}={value}" for name, value in variables.items())
    status, answer = curl(
        "POST",
        f"{server}/{API}/workflow/execute",
        {"workflowId": str(workflow_id), "programParameters": parameters, **body},
    )
    assert status == 202, answer
    return answer["jobId"]


def job_log(server: str, job_id: str) -> str:
    status, answer = curl("GET", f"{server}/{API}/jobs/{job_id}/log?tail=200")
    assert status == 200, answer
    return answer["log"]


def application_of(server: str, job_id: str, cluster: StandaloneCluster) -> str:
    """The id of the job's Spark application, as its log names it (on this cluster)."""
    found: list[str] = []

    def named() -> bool:
        match = APPLICATION.search(job_log(server, job_id))
        if match:
            assert match[2] == cluster.master_url
            found.append(match[1])
        return bool(match)

    wait_until(named, timeout=180)
    return found[0]


def finished_on_master(cluster: StandaloneCluster, app_id: str) -> bool:
    app = cluster.application(app_id)
    return app is not None and app["state"] == "FINISHED"


def test_a_workflow_runs_on_the_cluster_named_by_spark_config(
    cluster: StandaloneCluster,
    jupyter_server: str,  # noqa: F811
    repo: ModelRepository,
    iris,
    iris_model,
    tmp_path: Path,
) -> None:
    features, _ = iris
    repo.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
    root = tmp_path / "notebooks"  # the server's root_dir
    source = root / "customers"  # two files: two partitions, one on each executor
    source.mkdir()
    big = pd.concat([features] * 10, ignore_index=True)
    big.iloc[:750].to_csv(source / "part-a.csv", index=False)
    big.iloc[750:].to_csv(source / "part-b.csv", index=False)
    jar = root / "extra-udfs.jar"
    with zipfile.ZipFile(jar, "w") as archive:  # a jar is a zip; Spark only ships it
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    workflow = Workflows(repo).create(
        {"model": "iris:1", "input": "${inputPath}", "output": "${outputPath}", "engine": "spark"},
        name="score customers on the cluster",
    )
    output = root / "scored.parquet"
    wait_until(lambda: warm_client.status() is not None, timeout=120)

    job_id = execute(
        jupyter_server,
        workflow.id,
        {"inputPath": source, "outputPath": output},
        {"sparkConfig": {"spark.master": cluster.master_url}, "libJars": str(jar)},
    )
    app_id = application_of(jupyter_server, job_id, cluster)
    readings: list[dict] = []
    deadline = time.monotonic() + 400
    while True:
        status, job = curl("GET", f"{jupyter_server}/{API}/jobs/{job_id}")
        assert status == 200, job
        if job["status"] not in ("queued", "running"):
            break
        readings.append(job)
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    log = job_log(jupyter_server, job_id)
    assert job["status"] == "succeeded", (job["error"], log)
    assert job["rows_done"] == len(big)

    # Its progress while it ran: Spark's, indeterminate, with the time spent, as on local[*].
    running = [r for r in readings if r["status"] == "running" and r["progress"]]
    assert running, readings
    assert running[-1]["fraction"] is None and running[-1]["progress"]["seconds"] > 0
    assert f"Scored {len(big):,} rows" in log

    # The output is the local engine's, row for row, same columns, same types.
    local = tmp_path / "local.parquet"
    score("iris:1", source, local, engine="local", repository=repo)
    pd.testing.assert_frame_equal(pd.read_parquet(output), pd.read_parquet(local))

    # The model and the jar reached the executors through Spark, into their work folders.
    shipped = cluster.app_files(app_id)
    archives = [path for path in shipped if path.suffix == ".zip"]
    assert any("MLmodel" in zipfile.ZipFile(path).namelist() for path in archives), shipped
    assert any(path.name == jar.name for path in shipped), shipped
    # The application ended with the job: finished on the master, its cores free again.
    wait_until(lambda: finished_on_master(cluster, app_id), timeout=60)
    assert cluster.state()["activeapps"] == []


def test_cancel_stops_the_application_on_the_cluster(
    cluster: StandaloneCluster,
    jupyter_server: str,  # noqa: F811
    repo: ModelRepository,
    tmp_path: Path,
) -> None:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "x1"), ColSpec("double", "x2")]),
        outputs=Schema([ColSpec("double")]),
    )
    repo.save(StuckOnExecutors(), "stuck", signature=signature, pip_requirements=["pandas"])
    source = tmp_path / "notebooks" / "rows.csv"
    pd.DataFrame({"x1": np.arange(200.0), "x2": 1.0}).to_csv(source, index=False)
    output = tmp_path / "notebooks" / "never.parquet"
    workflow = Workflows(repo).create(
        {"model": "stuck:1", "input": "${inputPath}", "output": "${outputPath}", "engine": "spark"},
        name="stuck",
    )
    wait_until(lambda: warm_client.status() is not None, timeout=120)
    job_id = execute(
        jupyter_server,
        workflow.id,
        {"inputPath": source, "outputPath": output},
        # spark-submit style, as Sparkflows also sends it
        {"sparkConfig": f"--master {cluster.master_url} --conf spark.sql.shuffle.partitions=2"},
    )
    app_id = application_of(jupyter_server, job_id, cluster)

    def scoring_on_an_executor() -> bool:  # the model's zip fetched: a task is predicting
        return any(path.suffix == ".zip" for path in cluster.app_files(app_id))

    wait_until(scoring_on_an_executor, timeout=180)
    status, job = curl("POST", f"{jupyter_server}/{API}/jobs/{job_id}/cancel")
    assert status == 200, job
    assert job["status"] == "cancelled", (job, job_log(jupyter_server, job_id))
    wait_until(lambda: finished_on_master(cluster, app_id), timeout=60)
    assert cluster.state()["activeapps"] == []
    assert not output.exists()


def test_paths_the_executors_cannot_reach_are_said_plainly(
    unshared: tuple[StandaloneCluster, Path], iris_saved: str, iris, tmp_path: Path
) -> None:
    cluster, hidden = unshared
    reachable = tmp_path / "customers.csv"
    iris[0].to_csv(reachable, index=False)
    driver_only = hidden / "customers.csv"
    iris[0].to_csv(driver_only, index=False)

    def sparkserve_score(source: Path, output: Path) -> str:
        ran = subprocess.run(
            [
                *(sys.executable, "-m", "jupyter_sparkserve", "score", iris_saved),
                *(str(source), str(output), "--engine", "spark"),
                *("--spark-config", f"spark.master={cluster.master_url}"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode != 0, ran.stdout
        return ran.stderr

    said = sparkserve_score(driver_only, tmp_path / "scored.parquet")
    assert "An executor cannot find a file" in said and str(driver_only) in said, said
    assert "put them on a file system the driver and every executor share" in said, said
    assert not (tmp_path / "scored.parquet").exists()

    said = sparkserve_score(reachable, hidden / "scored.parquet")
    assert f"Spark scored {len(iris[0]):,} rows but this machine sees none of" in said, said
    assert "put them on a file system the driver and every executor share" in said, said
    assert not (hidden / "scored.parquet").exists()
