"""Models and versions over REST: a real Jupyter server (pytest-jupyter), the repository
under the test's SPARKSERVE_HOME, MLflow's SQLite store; every answer checked against
openapi.yaml by `_api`."""

from __future__ import annotations

from pathlib import Path

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)

from jupyter_sparkserve.repository import ModelRepository

pytestmark = pytest.mark.timeout(300)

SAVED_ACTIONS = ["register", "score", "build_image", "kubernetes", "delete"]
REGISTERED_ACTIONS = [
    "reregister",
    "deploy",
    "score",
    "build_image",
    "kubernetes",
    "snippets",
    "delete",
]


@pytest.fixture
def iris_versions(repo: ModelRepository, mlflow_model_dir: Path) -> None:
    """iris:1, iris:2 (tagged team=risk) and wine:1, saved by another process's core."""
    repo.import_model(mlflow_model_dir, "iris")
    repo.import_model(mlflow_model_dir, "iris", tags={"team": "risk"})
    repo.import_model(mlflow_model_dir, "wine")


async def test_list_pages_and_filters(api: Api, iris_versions) -> None:
    answer = await api("GET", "models")
    assert answer.status == 200
    assert [m["name"] for m in answer.body["items"]] == ["iris", "wine"]
    iris = answer.body["items"][0]
    assert (iris["latest_version"], iris["version_count"]) == (2, 2)
    assert (iris["registered"], iris["deployed"], iris["actions"]) == (False, False, SAVED_ACTIONS)
    assert (answer.body["total"], answer.body["next_offset"]) == (2, None)

    first = await api("GET", "models", params={"limit": 1})
    assert [m["name"] for m in first.body["items"]] == ["iris"]
    assert first.body["next_offset"] == 1
    second = await api("GET", "models", params={"limit": 1, "offset": 1})
    assert [m["name"] for m in second.body["items"]] == ["wine"]

    found = await api("GET", "models", params={"name_contains": "IN"})
    assert [m["name"] for m in found.body["items"]] == ["wine"]
    tagged = await api("GET", "models", params={"tag": "team=risk"})
    assert [m["name"] for m in tagged.body["items"]] == ["iris"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "ten"}, "Query parameter limit must be a whole number"),
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": 1001}, "limit must be between 1 and 1000"),
        ({"offset": -1}, "Query parameter offset must be a whole number of at least 0"),
    ],
)
async def test_bad_paging_is_refused(api: Api, params, message) -> None:
    answer = await api("GET", "models", params=params)
    assert (answer.status, answer.error) == (400, "INVALID_INPUT")
    assert message in answer.message


async def test_import_show_alias_and_delete(api: Api, mlflow_model_dir: Path) -> None:
    created = await api(
        "POST",
        "models",
        body={
            "source": str(mlflow_model_dir),
            "name": "iris",
            "description": "first try",
            "tags": {"team": "risk"},
            "metrics": {"auc": 0.91},
        },
    )
    assert created.status == 201
    assert created.headers["Location"].endswith("/sparkserve/api/v1/models/iris/versions/1")
    version = created.body
    assert (version["ref"], version["description"], version["flavor"]) == (
        "iris:1",
        "first try",
        "sklearn",
    )
    assert (version["tags"], version["metrics"]) == ({"team": "risk"}, {"auc": 0.91})
    assert version["actions"] == SAVED_ACTIONS
    await api("POST", "models", body={"source": "iris:1", "name": "iris"})  # a copy: iris:2

    model = await api("GET", "models/iris")
    assert model.status == 200
    assert [v["version"] for v in model.body["versions"]] == [2, 1]
    assert all(v["actions"] == SAVED_ACTIONS for v in model.body["versions"])

    aliased = await api("PUT", "models/iris/aliases/champion", body={"version": 1})
    assert (aliased.status, aliased.body["ref"], aliased.body["aliases"]) == (
        200,
        "iris:1",
        ["champion"],
    )
    assert (await api("GET", "models/iris")).body["aliases"] == {"champion": 1}
    moved = await api("PUT", "models/iris/aliases/champion", body={"version": 2})
    assert moved.body["ref"] == "iris:2"
    assert (await api("GET", "models/iris/versions/1")).body["aliases"] == []
    assert (await api("DELETE", "models/iris/aliases/champion")).status == 204
    gone = await api("DELETE", "models/iris/aliases/champion")
    assert (gone.status, gone.error) == (404, "NOT_FOUND")
    assert "has no alias 'champion'" in gone.message

    deleted = await api("DELETE", "models/iris/versions/1")
    assert (deleted.status, deleted.body["ref"], deleted.body["actions"]) == (200, "iris:1", [])
    missing = await api("GET", "models/iris/versions/1")
    assert (missing.status, missing.error) == (404, "NOT_FOUND")
    assert "(versions: 2)" in missing.message

    dropped = await api("DELETE", "models/iris")
    assert dropped.status == 200
    assert [v["ref"] for v in dropped.body["versions"]] == ["iris:2"]
    assert (await api("GET", "models/iris")).status == 404
    assert (await api("GET", "models")).body["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "raw", "code", "message"),
    [
        ("POST", "models", b"", "INVALID_JSON", "needs a JSON body"),
        ("POST", "models", b"{not json", "INVALID_JSON", "not valid JSON"),
        ("POST", "models", b"[1, 2]", "INVALID_BODY", "must be a JSON object with the fields"),
        ("POST", "models", b'{"name": "iris"}', "INVALID_BODY", "needs 'source'"),
        (
            "POST",
            "models",
            b'{"source": "/x", "name": "iris", "owner": "me"}',
            "INVALID_BODY",
            "Unknown field(s) 'owner' in the import request",
        ),
        (
            "POST",
            "models",
            b'{"source": "/x", "name": 7}',
            "INVALID_BODY",
            "'name' in the import request must be a string",
        ),
        (
            "POST",
            "models",
            b'{"source": "/x", "name": "iris", "tags": ["a"]}',
            "INVALID_BODY",
            "'tags' in the import request must be an object",
        ),
        (
            "POST",
            "models",
            b'{"source": "/x", "name": "bad name"}',
            "INVALID_NAME",
            "Invalid model name 'bad name'",
        ),
        (
            "POST",
            "models",
            b'{"source": "/x", "name": "iris", "metrics": {"auc": "high"}}',
            "INVALID_INPUT",
            "auc",
        ),
        (
            "PUT",
            "models/iris/aliases/champion",
            b'{"version": true}',
            "INVALID_BODY",
            "'version' in the alias request must be an integer",
        ),
        (
            "PUT",
            "models/iris/aliases/champion",
            b"{}",
            "INVALID_BODY",
            "needs 'version'",
        ),
        ("GET", "models/iris/versions/one", None, "INVALID_INPUT", "a number such as 1"),
        ("GET", "models/iris/versions/0", None, "INVALID_INPUT", "a number such as 1"),
        ("GET", "models/not%20a%20name", None, "INVALID_NAME", "Invalid model name"),
    ],
)
async def test_bad_requests_say_what_to_fix(
    api: Api, iris_versions, method, path, raw, code, message
) -> None:
    answer = await api(method, path, raw=raw)
    assert (answer.status, answer.error) == (400, code), answer.body
    assert message in answer.message


async def test_unknown_things_are_not_found(api: Api, iris_versions, tmp_path: Path) -> None:
    for method, path in [
        ("GET", "models/nope"),
        ("DELETE", "models/nope"),
        ("GET", "models/iris/versions/9"),
        ("DELETE", "models/iris/versions/9"),
        ("POST", "models/iris/versions/9/register"),
        ("GET", "models/iris/versions/9/snippets"),
    ]:
        answer = await api(method, path)
        assert (answer.status, answer.error) == (404, "NOT_FOUND"), (method, path)
    imported = await api("POST", "models", body={"source": str(tmp_path), "name": "x"})
    assert (imported.status, imported.error) == (400, "NOT_AN_MLFLOW_MODEL")


async def test_register_reregister_and_the_offline_snippet(api: Api, iris_versions) -> None:
    refused = await api("GET", "models/iris/versions/1/snippets")
    assert (refused.status, refused.error) == (409, "CONFLICT")
    assert "register it first" in refused.message
    never = await api("POST", "models/iris/versions/1/reregister")
    assert (never.status, never.error) == (409, "CONFLICT")

    registered = await api("POST", "models/iris/versions/1/register")
    assert registered.status == 201
    assert registered.body["registration"]["model_uri"] == "models:/iris/1"
    assert registered.body["version"]["actions"] == REGISTERED_ACTIONS
    assert registered.body["version"]["registered"] is True
    again = await api("POST", "models/iris/versions/1/register")
    assert (again.status, again.error) == (409, "CONFLICT")
    assert "already registered" in again.message

    reregistered = await api("POST", "models/iris/versions/1/reregister")
    assert reregistered.status == 201
    assert reregistered.body["registration"]["mlflow_version"] == 2

    listed = await api("GET", "models")
    iris = listed.body["items"][0]
    assert (iris["latest_version"], iris["registered"]) == (2, False)  # the list shows latest
    model = await api("GET", "models/iris")
    assert [v["registered"] for v in model.body["versions"]] == [False, True]

    snippets = await api("GET", "models/iris/versions/1/snippets")
    assert snippets.status == 200
    (snippet,) = snippets.body["snippets"]
    assert snippet["language"] == "python"
    assert ".get_model_version_download_uri('iris', '2')" in snippet["code"]  # models:/iris/2
    assert snippet["cell"].startswith("# Score iris:1 offline from MLflow (models:/iris/2)\n")


async def test_score_a_few_rows(api: Api, iris_versions, iris, iris_model) -> None:
    features, _ = iris
    rows = features.head(5)
    expected = iris_model.predict(rows).tolist()
    split = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}

    scored = await api("POST", "models/iris/versions/1/score", body={"dataframe_split": split})
    assert scored.status == 200
    assert scored.body["columns"] == [*rows.columns, "prediction"]
    assert [row[-1] for row in scored.body["data"]] == expected
    assert (scored.body["ref"], scored.body["rows"]) == ("iris:1", 5)

    records = await api(
        "POST",
        "models/iris/versions/2/score",
        body={
            "dataframe_records": rows.to_dict(orient="records"),
            "keep_columns": [],
            "prediction_column": "species",
        },
    )
    assert records.body["columns"] == ["species"]
    assert [row[0] for row in records.body["data"]] == expected


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({}, 400, "INVALID_BODY", "one of 'dataframe_split' or 'dataframe_records'"),
        (
            {"dataframe_split": {"columns": ["a"], "data": [[1]]}, "dataframe_records": [{}]},
            400,
            "INVALID_BODY",
            "one of 'dataframe_split' or 'dataframe_records'",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}},
            400,
            "INVALID_BODY",
            "Row 0 of dataframe_split must be a list of 2 values",
        ),
        ({"dataframe_split": {"data": [[1]]}}, 400, "INVALID_BODY", "needs 'columns'"),
        ({"dataframe_records": [1, 2]}, 400, "INVALID_BODY", "Record 0 of dataframe_records"),
        ({"dataframe_records": []}, 400, "INVALID_BODY", "no rows to score"),
        (
            {"dataframe_records": [{"a": 1.0}] * 1001},
            413,
            "TOO_MANY_ROWS",
            "1001 rows is more than the 1000",
        ),
        (
            {"dataframe_records": [{"a": 1.0}]},
            400,
            "INVALID_INPUT",
            "which the model needs",
        ),
        (
            {"dataframe_records": [{"a": 1.0}], "keep_columns": "a"},
            400,
            "INVALID_BODY",
            "'keep_columns' in the score request must be an array",
        ),
    ],
)
async def test_score_refusals(api: Api, iris_versions, body, status, code, message) -> None:
    answer = await api("POST", "models/iris/versions/1/score", body=body)
    assert (answer.status, answer.error) == (status, code), answer.body
    assert message in answer.message


async def test_a_value_the_model_refuses_is_a_bad_request(api: Api, iris_versions, iris) -> None:
    columns = list(iris[0].columns)
    answer = await api(
        "POST",
        "models/iris/versions/1/score",
        body={"dataframe_split": {"columns": columns, "data": [["wide"] * len(columns)]}},
    )
    assert (answer.status, answer.error) == (400, "INVALID_INPUT")
    assert "The model refused the input" in answer.message
