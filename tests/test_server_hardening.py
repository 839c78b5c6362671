"""Bad input to the REST API is a 4xx that says what to fix, never a 500: numbers a database
column cannot hold, digits that are not ASCII, JSON nested past any sense or holding NaN,
and methods a resource does not take (405 with `Allow`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)

from jupyter_sparkserve.repository import ModelRepository

pytestmark = pytest.mark.timeout(300)
TOO_BIG = str(2**64)


async def fetch(jp_fetch, method: str, path: str, body: bytes | None = None):
    response = await jp_fetch(
        "sparkserve", "api", "v1", *path.split("/"),
        method=method, body=body, raise_error=False, allow_nonstandard_methods=True,
    )  # fmt: skip
    return response.code, json.loads(response.body), response.headers


@pytest.fixture
def saved_iris(repo: ModelRepository, mlflow_model_dir: Path) -> None:
    repo.import_model(mlflow_model_dir, "iris")


@pytest.mark.parametrize(
    "path",
    [
        "models/iris/versions/%C2%B2",  # a superscript two: isdigit() says yes
        "models/iris/versions/%D9%A1",  # an Arabic-Indic one
        f"models/iris/versions/{TOO_BIG}",
        "models/iris/versions/+1",
        "workflows/%D9%A1",
        f"workflows/{TOO_BIG}",
    ],
)
async def test_path_ids_that_are_not_stored_numbers_are_400(
    jp_fetch, saved_iris, path: str
) -> None:
    status, body, _ = await fetch(jp_fetch, "GET", path)
    assert (status, body["error"]) == (400, "INVALID_INPUT"), body


async def test_query_numbers_past_a_bigint_are_400_not_an_overflow(api: Api, saved_iris) -> None:
    for params in ({"offset": TOO_BIG}, {"limit": "٣"}):
        answer = await api("GET", "models", params=params)
        assert (answer.status, answer.error) == (400, "INVALID_INPUT"), answer.body
    assert (await api("GET", "models", params={"offset": str(2**63 - 1)})).status == 200
    jobs = await api("GET", "jobs", params={"workflow_id": TOO_BIG})
    assert (jobs.status, jobs.error) == (400, "INVALID_INPUT")


async def test_a_query_parameter_given_twice_is_400(jp_fetch, saved_iris) -> None:
    """Found by schemathesis: `tail=garbage&tail=` was answered with the whole log, the bad
    first value unseen. Which of two values counts would be a guess: refused."""
    for path, params in (
        ("models", [("limit", "5"), ("limit", "")]),
        ("jobs", [("status", "running"), ("status", "failed")]),
    ):
        response = await jp_fetch("sparkserve", "api", "v1", path, params=params, raise_error=False)
        body = json.loads(response.body)
        assert (response.code, body["error"]) == (400, "INVALID_INPUT"), body
        assert "given 2 times" in body["message"]


async def test_a_workflow_id_past_a_bigint_is_400(api: Api) -> None:
    answer = await api("POST", "workflow/execute", body={"workflowId": 2**64})
    assert (answer.status, answer.error) == (400, "INVALID_INPUT")
    assert "positive integer" in answer.message


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"dataframe_split": {"columns": ["a"], "data": [[Infinity]]}}',
        b'{"dataframe_records": [{"a": NaN}]}',
    ],
)
async def test_json_nested_too_deep_or_with_nan_is_400(api: Api, saved_iris, raw: bytes) -> None:
    answer = await api("POST", "models/iris/versions/1/score", raw=raw)
    assert (answer.status, answer.error) == (400, "INVALID_JSON"), answer.body


async def test_a_method_a_resource_does_not_take_is_405_with_allow(jp_fetch) -> None:
    status, body, headers = await fetch(jp_fetch, "PUT", "status", b"{}")
    assert status == 405 and body["error"] == "HTTP_405"
    assert headers["Allow"] == "GET"
    status, _body, headers = await fetch(jp_fetch, "PATCH", "deployments", b"{}")
    assert status == 405 and headers["Allow"] == "GET, POST"


async def test_a_huge_score_request_never_holds_the_server(jp_fetch, saved_iris) -> None:
    """Score bodies are parsed off the event loop, and bounded: a 12 MB body with a million
    columns is refused before it is parsed, one of 3 MB with 300,000 columns once parsed
    (413 both), while `status` goes on answering at once."""
    import asyncio
    import time

    def body(columns: int) -> bytes:
        names = [f"c{i}" for i in range(columns)]
        return json.dumps({"dataframe_split": {"columns": names, "data": [[0] * columns]}}).encode()

    route = "models/iris/versions/1/score"
    await fetch(jp_fetch, "GET", "status")  # its first answer imports the target probes
    scoring = asyncio.gather(
        fetch(jp_fetch, "POST", route, body(1_000_000)),
        fetch(jp_fetch, "POST", route, body(300_000)),
    )
    slowest = 0.0
    while not scoring.done():
        started = time.perf_counter()
        status, _body, _headers = await fetch(jp_fetch, "GET", "status")
        slowest = max(slowest, time.perf_counter() - started)
        assert status == 200
    (huge, _, _), (wide, _, _) = [(code, answer["error"], h) for code, answer, h in await scoring]
    assert (huge, wide) == (413, 413)
    answers = [answer["error"] for _code, answer, _h in await scoring]
    assert answers == ["BODY_TOO_LARGE", "TOO_MANY_COLUMNS"]
    assert slowest < 1.0, slowest


async def test_version_numbers_are_never_reused_after_the_model_is_deleted(
    api: Api, mlflow_model_dir: Path
) -> None:
    body = {"source": str(mlflow_model_dir), "name": "churn"}
    assert (await api("POST", "models", body=body)).body["version"] == 1
    assert (await api("DELETE", "models/churn")).status == 200
    assert (await api("DELETE", "models/churn")).status == 404  # nothing left to delete
    again = await api("POST", "models", body=body)
    assert (again.status, again.body["version"]) == (201, 2)


@pytest.mark.parametrize(
    ("settings", "what"),
    [
        ({"input": "/etc/passwd"}, "input '/etc/passwd'"),
        ({"output": "/etc/scored.csv"}, "output '/etc/scored.csv'"),
        ({"input": "../../../../etc/passwd"}, "input '../../../../etc/passwd'"),
        ({"input": "link/passwd"}, "input 'link/passwd'"),  # a symbolic link out of the root
        ({"input": "/etc/*.conf"}, "input '/etc/*.conf'"),
        ({"output": "out\u0000.csv"}, "NUL character"),
    ],
)
async def test_jobs_over_rest_stay_in_the_servers_folders(
    api: Api, saved_iris, jp_root_dir: Path, settings: dict, what: str
) -> None:
    (jp_root_dir / "link").symlink_to("/etc")
    spec = {"model": "iris:1", "input": "in.csv", "output": "out.csv", **settings}
    answer = await api("POST", "jobs", body={"spec": spec})
    assert (answer.status, answer.error) == (400, "INVALID_INPUT"), answer.body
    assert what in answer.message
    assert (await api("GET", "jobs")).body["items"] == []  # nothing was queued


async def test_relative_paths_start_at_the_root_and_workflows_are_confined_too(
    api: Api, saved_iris, jp_root_dir: Path, iris
) -> None:
    iris[0].to_csv(jp_root_dir / "in.csv", index=False)
    job = await api("POST", "jobs", body={"spec": {"model": "iris:1", "input": "in.csv",
                                                    "output": "out.csv"}})  # fmt: skip
    assert job.status == 202, job.body
    assert job.body["spec"]["input"] == str(jp_root_dir / "in.csv")
    assert job.body["spec"]["output"] == str(jp_root_dir / "out.csv")

    refused = await api("POST", "workflows", body={"spec": {"model": "iris:1",
                        "input": "in.csv", "output": "/etc/out.csv"}})  # fmt: skip
    assert (refused.status, refused.error) == (400, "INVALID_INPUT")
    created = await api("POST", "workflows", body={"spec": {"model": "iris:1",
                        "input": "in.csv", "output": "${out}"}})  # fmt: skip
    assert created.status == 201
    escape = await api("POST", "workflow/execute", body={
        "workflowId": created.body["id"], "programParameters": "--var out=/etc/x.csv"})  # fmt: skip
    assert (escape.status, escape.error) == (400, "INVALID_INPUT")
    assert "outside the folders" in escape.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://169.254.169.254/latest/meta-data", "not http URIs"),
        ("s3://bucket/models/iris", "not s3 URIs"),
        ("/etc", "outside the folders"),
    ],
)
async def test_imports_fetch_only_what_the_server_is_meant_to_reach(
    api: Api, source: str, message: str
) -> None:
    answer = await api("POST", "models", body={"source": source, "name": "iris"})
    assert (answer.status, answer.error) == (400, "INVALID_INPUT"), answer.body
    assert message in answer.message
    if "://" in source:
        assert answer.body["remedy"] == {"action": "import_model", "args": {"source": source}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"spec": {"model": "iris:1", "input": "in.csv", "output": "a" * 300 + ".csv"}},
         "a file system takes at most 255"),
        ({"spec": {"model": "iris:1", "input": "in\u0000.csv", "output": "out.csv"}},
         "NUL character"),
        ({"spec": {"model": "iris:1", "input": "in.csv", "output": "out.csv",
                   "email_on_failure": "ops\u0000@example.com"}}, "is not an e-mail address"),
        ({"spec": {"model": "iris:1", "input": "in.csv", "output": "out.csv",
                   "email_on_failure": "=?utf-8?q?a=0D=0ABcc:x?=@example.com"}},
         "encoded words are refused"),
    ],
)  # fmt: skip
async def test_unusable_paths_and_addresses_are_refused_at_submission(
    api: Api, saved_iris, body: dict, message: str
) -> None:
    answer = await api("POST", "jobs", body=body)
    assert (answer.status, answer.error) == (400, "INVALID_INPUT"), answer.body
    assert message in answer.message
    assert (await api("GET", "jobs")).body["items"] == []


async def test_found_by_schemathesis_a_tilde_name_and_a_null_ref_are_400(api: Api) -> None:
    """Cases `schemathesis run` against openapi.yaml found answering 500."""
    tilde = await api("GET", "models/~nosuchuser/versions/1/snippets")
    assert (tilde.status, tilde.error) == (400, "INVALID_REFERENCE"), tilde.body
    null_ref = await api("POST", "deployments", body={"ref": None})
    assert (null_ref.status, null_ref.error) == (400, "INVALID_BODY"), null_ref.body
