"""Score workflows, `workflow/execute` and jobs over REST, with real job processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pandas as pd
import pytest
from _api import Answer, Api, api_fixture, server_config  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(400)


async def finished(api: Api, job_id: str, timeout: float = 240.0) -> Answer:
    deadline = time.monotonic() + timeout
    while True:
        answer = await api("GET", f"jobs/{job_id}")
        if answer.body["status"] not in ("queued", "running"):
            return answer
        assert time.monotonic() < deadline, f"job {job_id} is still {answer.body['status']}"
        await asyncio.sleep(0.25)


async def test_workflow_crud(api: Api, iris_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "scored.csv"
    spec = {"model": "iris@champion", "input": str(iris_csv), "output": str(output)}
    created = await api("POST", "workflows", body={"name": "nightly", "spec": spec})
    assert created.status == 201
    workflow_id = created.body["id"]
    assert created.headers["Location"].endswith(f"/sparkserve/api/v1/workflows/{workflow_id}")
    assert created.body["spec"]["engine"] == "local"
    assert created.body["spec"]["keep_columns"] is None  # every input column

    listed = await api("GET", "workflows")
    assert [w["name"] for w in listed.body["items"]] == ["nightly"]
    assert (await api("GET", f"workflows/{workflow_id}")).body == created.body

    updated = await api(
        "PUT",
        f"workflows/{workflow_id}",
        body={"name": "hourly", "spec": {"keep_columns": "petal width (cm)"}},
    )
    assert updated.status == 200
    assert updated.body["name"] == "hourly"
    assert updated.body["spec"]["keep_columns"] == ["petal width (cm)"]
    reset = await api("PUT", f"workflows/{workflow_id}", body={"spec": {"keep_columns": None}})
    assert (reset.body["name"], reset.body["spec"]["keep_columns"]) == ("hourly", None)

    refused = await api("PUT", f"workflows/{workflow_id}", body={"spec": {"engine": "warp"}})
    assert (refused.status, refused.error) == (400, "INVALID_INPUT")
    assert "Unknown engine 'warp'" in refused.message

    deleted = await api("DELETE", f"workflows/{workflow_id}")
    assert (deleted.status, deleted.body["id"]) == (200, workflow_id)
    gone = await api("GET", f"workflows/{workflow_id}")
    assert (gone.status, gone.error) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("POST", "workflows", {"name": "x"}, 400, "INVALID_BODY", "needs 'spec'"),
        ("POST", "workflows", {"spec": {}, "owner": "me"}, 400, "INVALID_BODY", "'owner'"),
        ("POST", "workflows", {"spec": {"model": "iris"}}, 400, "INVALID_INPUT", "needs input"),
        (
            "POST",
            "workflows",
            {"spec": {"model": "i", "input": "a.csv", "output": "b.csv", "colour": "red"}},
            400,
            "INVALID_INPUT",
            "Unknown workflow setting(s) 'colour'",
        ),
        ("PUT", "workflows/1", {"spec": []}, 400, "INVALID_BODY", "'spec' in the workflow"),
        ("GET", "workflows/abc", None, 400, "INVALID_INPUT", "positive integer, got 'abc'"),
        ("GET", "workflows/9", None, 404, "NOT_FOUND", "No workflow 9"),
        ("DELETE", "workflows/9", None, 404, "NOT_FOUND", "No workflow 9"),
        ("PUT", "workflows/9", {"name": "x"}, 404, "NOT_FOUND", "No workflow 9"),
        ("POST", "workflow/execute", {}, 400, "INVALID_INPUT", "workflowId is required"),
        (
            "POST",
            "workflow/execute",
            {"workflowId": 9, "programParams": "x"},
            400,
            "INVALID_INPUT",
            "Unknown field(s) 'programParams'",
        ),
        (
            "POST",
            "workflow/execute",
            {"workflowId": 9, "programParameters": "--bogus 1"},
            400,
            "INVALID_INPUT",
            "unknown key --bogus",
        ),
        ("POST", "workflow/execute", {"workflowId": "9"}, 404, "NOT_FOUND", "No workflow 9"),
        ("POST", "jobs", {}, 400, "INVALID_BODY", "needs 'spec'"),
        (
            "POST",
            "jobs",
            {"spec": {"model": "nope", "input": "a.csv", "output": "b.csv"}},
            404,
            "NOT_FOUND",
            "nope",
        ),
        ("GET", "jobs/nope", None, 404, "NOT_FOUND", "No job 'nope'"),
        ("GET", "jobs/nope/log", None, 404, "NOT_FOUND", "No job 'nope'"),
        ("POST", "jobs/nope/cancel", None, 404, "NOT_FOUND", "No job 'nope'"),
    ],
)
async def test_refusals(api: Api, method, path, body, status, code, message) -> None:
    answer = await api(method, path, body=body)
    assert (answer.status, answer.error) == (status, code), answer.body
    assert message in answer.message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "lost"}, "Unknown job status 'lost'"),
        ({"limit": 0}, "Query parameter limit must be a whole number of at least 1"),
        ({"workflow_id": "x"}, "Query parameter workflow_id"),
    ],
)
async def test_bad_job_queries(api: Api, params, message) -> None:
    answer = await api("GET", "jobs", params=params)
    assert (answer.status, answer.error) == (400, "INVALID_INPUT")
    assert message in answer.message


async def test_execute_runs_the_workflow_as_a_job(
    api: Api, iris_saved: str, iris_csv: Path, tmp_path: Path, iris, iris_model
) -> None:
    spec = {"model": "iris", "input": str(iris_csv), "output": str(tmp_path / "unused.csv")}
    workflow = (await api("POST", "workflows", body={"name": "daily", "spec": spec})).body
    output = tmp_path / "scored.parquet"
    started = await api(
        "POST",
        "workflow/execute",
        body={
            "workflowId": str(workflow["id"]),
            "programParameters": f"--output {output} --keep-columns 'petal width (cm)'",
            "sparkConfig": "",
            "libJars": "",
            "emailOnSuccess": "",
            "emailOnFailure": "",
        },
    )
    assert started.status == 202
    job_id = started.body["jobId"]
    assert started.headers["Location"].endswith(f"/sparkserve/api/v1/jobs/{job_id}")
    assert started.body["job"]["spec"]["model"] == iris_saved  # pinned at submission

    done = await finished(api, job_id)
    assert done.body["status"] == "succeeded", done.body["error"]
    assert (done.body["rows_done"], done.body["fraction"]) == (150, 1.0)
    scored = pd.read_parquet(output)
    assert list(scored.columns) == ["petal width (cm)", "prediction"]
    assert scored["prediction"].tolist() == iris_model.predict(iris[0]).tolist()

    listed = await api("GET", "jobs", params={"workflow_id": workflow["id"]})
    assert [j["id"] for j in listed.body["items"]] == [job_id]
    assert (await api("GET", "jobs", params={"status": "running"})).body["items"] == []
    log = await api("GET", f"jobs/{job_id}/log")
    assert f"Job {job_id} succeeded." in log.body["log"]
    tail = await api("GET", f"jobs/{job_id}/log", params={"tail": 1})
    assert tail.body["log"].endswith(f"Job {job_id} succeeded.")
    late = await api("POST", f"jobs/{job_id}/cancel")
    assert (late.status, late.error) == (409, "CONFLICT")
    assert "nothing to cancel" in late.message


async def test_a_submitted_job_can_be_cancelled(
    api: Api, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.csv"
    spec = {"model": iris_saved, "input": str(iris_csv), "output": str(output)}
    submitted = await api("POST", "jobs", body={"spec": spec})
    assert (submitted.status, submitted.body["status"]) == (202, "queued")
    busy = await api("POST", "jobs", body={"spec": spec})
    assert (busy.status, busy.error) == (409, "CONFLICT")
    assert "is already writing" in busy.message

    cancelled = await api("POST", f"jobs/{submitted.body['id']}/cancel")
    assert (cancelled.status, cancelled.body["status"]) == (200, "cancelled")
    assert cancelled.body["cancel_requested"] is True
    assert not output.exists()
