"""`sparkserve score`, `sparkserve workflows ...` and `sparkserve jobs ...` as a user types
them: a real repository, real job processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import FAST_SAVE

from jupyter_sparkserve.cli import main

pytestmark = pytest.mark.timeout(300)


def sparkserve(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def sparkserve_json(*args: str, exit_code: int = 0) -> Any:
    result = sparkserve(*args, "--json")
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def error_of(*args: str) -> dict:
    found = sparkserve_json(*args, exit_code=1)
    assert {"error", "message"} <= set(found) <= {"error", "message", "remedy", "hint"}
    return found


@pytest.fixture
def iris_csv(repo, iris, iris_model, tmp_path: Path) -> Path:
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    path = tmp_path / "iris.csv"
    iris[0].to_csv(path, index=False)
    return path


def test_score_in_the_foreground(iris, iris_model, iris_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "scored.parquet"
    result = sparkserve_json(
        "score", "iris", str(iris_csv), str(output), "--keep-columns", "sepal length (cm)"
    )
    assert result["rows"] == 150
    assert result["output"] == str(output)
    assert result["prediction_columns"] == ["prediction"]
    scored = pd.read_parquet(output)
    assert list(scored.columns) == ["sepal length (cm)", "prediction"]
    assert scored["prediction"].tolist() == iris_model.predict(iris[0]).tolist()

    human = sparkserve(
        "score", "iris:1", str(iris_csv), str(tmp_path / "scored-jsonl"), "--format", "jsonl",
        "--prediction-column", "species",
    )  # fmt: skip
    assert human.exit_code == 0, human.output
    assert f"Scored 150 rows from 1 file into {tmp_path / 'scored-jsonl'}" in human.stdout
    assert "(predictions: species)" in human.stdout
    assert "Scoring iris.csv" in human.stderr  # the progress bar
    lines = (tmp_path / "scored-jsonl" / "iris.jsonl").read_text().splitlines()  # a folder
    assert len(lines) == 150 and '"species"' in lines[0]

    engine = error_of("score", "iris", str(iris_csv), str(tmp_path / "x.csv"), "--engine", "dask")
    assert engine == {
        "error": "INVALID_INPUT",
        "message": "Unknown engine 'dask': use one of local, azureml, container, sagemaker, spark.",
    }
    missing = error_of("score", "iris", str(tmp_path / "nope.csv"), str(tmp_path / "x.csv"))
    assert missing["error"] == "INVALID_INPUT" and "nope.csv" in missing["message"]
    spark_only = error_of(
        "score", "iris", str(iris_csv), str(tmp_path / "x.csv"), "--spark-config", "a=b"
    )
    assert "engine 'spark' only" in spark_only["message"]
    assert error_of("score", "ghost", str(iris_csv), str(tmp_path / "x.csv"))["error"] == (
        "NOT_FOUND"
    )


def test_workflows_and_jobs(iris_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "daily.csv"
    created = sparkserve_json(
        "workflows", "create", "iris", str(iris_csv), str(output), "--name", "daily",
        "--keep-columns", "sepal length (cm)", "--email-on-failure", "ops@example.com",
    )  # fmt: skip
    assert created["id"] == 1
    assert created["spec"]["keep_columns"] == ["sepal length (cm)"]
    assert created["spec"]["email_on_failure"] == ["ops@example.com"]
    assert [w["id"] for w in sparkserve_json("workflows", "list")] == [1]
    assert sparkserve_json("workflows", "show", "1")["name"] == "daily"

    updated = sparkserve_json(
        "workflows", "update", "1", "--prediction-column", "species", "--email-on-failure", ""
    )
    assert updated["spec"]["prediction_column"] == "species"
    assert updated["spec"]["email_on_failure"] == []
    assert updated["spec"]["keep_columns"] == ["sepal length (cm)"]  # not given: kept
    human = sparkserve("workflows", "show", "1").stdout
    assert "workflow 1  daily" in human and "keep columns" in human
    assert "daily" in sparkserve("workflows", "list").stdout
    refused = error_of("workflows", "update", "1", "--engine", "gpu")
    assert (
        refused["message"]
        == "Unknown engine 'gpu': use one of local, azureml, container, sagemaker, spark."
    )
    assert (
        "engine 'spark' only"
        in error_of("workflows", "execute", "1", "--spark-config", "spark.master=local")["message"]
    )
    assert (
        "unknown key --var1"
        in error_of("workflows", "execute", "1", "--program-parameters", "--var1 value1")["message"]
    )
    assert error_of("workflows", "execute", "9")["error"] == "NOT_FOUND"

    elsewhere = tmp_path / "june.parquet"
    job = sparkserve_json(
        "workflows", "execute", "1", "--program-parameters", f"--output {elsewhere}", "--wait"
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["workflow_id"] == 1 and job["rows_done"] == 150
    assert list(pd.read_parquet(elsewhere).columns) == ["sepal length (cm)", "species"]
    assert not output.exists()

    failed = sparkserve_json(
        "workflows", "execute", "1", "--program-parameters", "--input /nowhere/x.csv", "--wait",
        exit_code=1,
    )  # fmt: skip
    assert failed["status"] == "failed" and "/nowhere/x.csv" in failed["error"]

    jobs = sparkserve_json("jobs", "list")
    assert [j["id"] for j in jobs] == [failed["id"], job["id"]]  # newest first
    assert [j["id"] for j in sparkserve_json("jobs", "list", "--status", "failed")] == [
        failed["id"]
    ]
    assert sparkserve_json("jobs", "show", job["id"])["output_path"] == str(elsewhere)
    assert "succeeded" in sparkserve("jobs", "show", job["id"]).stdout
    assert job["id"] in sparkserve("jobs", "list").stdout
    tail = sparkserve_json("jobs", "log", job["id"], "--tail", "1")
    assert tail == {"id": job["id"], "log": f"{tail['log'][:19]} Job {job['id']} succeeded."}
    assert f"Job {job['id']} succeeded." in sparkserve("jobs", "log", job["id"]).stdout
    assert error_of("jobs", "cancel", job["id"])["error"] == "CONFLICT"
    assert error_of("jobs", "list", "--status", "done")["error"] == "INVALID_INPUT"
    assert error_of("jobs", "show", "nope")["error"] == "NOT_FOUND"

    queued = sparkserve_json("workflows", "execute", "1")
    assert queued["status"] == "queued"
    cancelled = sparkserve_json("jobs", "cancel", queued["id"])
    assert cancelled["status"] == "cancelled"

    assert "needs --yes" in error_of("workflows", "delete", "1")["message"]
    assert sparkserve_json("workflows", "delete", "1", "--yes") == {"deleted": 1}
    assert error_of("workflows", "show", "1")["error"] == "NOT_FOUND"
    assert len(sparkserve_json("jobs", "list")) == 3  # jobs outlive their workflow
