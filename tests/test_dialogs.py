"""Dialogs that validate before they close: the REST checks they call (`checks/deploy`,
`checks/score`) refuse what the real calls refuse, name the field at fault and leave nothing
behind; in a real JupyterLab the dialog stays open with the message and what was typed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from _api import Api, api_fixture, server_config  # noqa: F401 (fixtures)

from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.offline import score

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (a real socket), for as long as the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def registered(repo: ModelRepository, mlflow_model_dir: Path) -> str:
    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris:1")
    return "iris:1"


async def test_deploy_check_refuses_a_port_in_use_and_records_nothing(
    api: Api, repo: ModelRepository, registered: str, listening: int
) -> None:
    body = {"ref": registered, "target": "local", "options": {"port": listening}}
    answer = await api("POST", "checks/deploy", body=body)
    assert answer.status == 409, answer.body
    assert answer.body["field"] == "port"
    assert f"Port {listening}" in answer.message
    assert Deployments(repo).list() == []

    # The real deploy is refused the same way, before it records a deployment.
    refused = await api("POST", "deployments", body=body)
    assert (refused.status, refused.body) == (409, answer.body)
    assert Deployments(repo).list() == []


async def test_deploy_check_passes_what_deploy_would_start(
    api: Api, repo: ModelRepository, registered: str
) -> None:
    answer = await api("POST", "checks/deploy", body={"ref": registered})
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert Deployments(repo).list() == []


async def test_deploy_check_refuses_an_unregistered_version(
    api: Api, repo: ModelRepository, mlflow_model_dir: Path
) -> None:
    repo.import_model(mlflow_model_dir, "plain")
    answer = await api("POST", "checks/deploy", body={"ref": "plain:1"})
    assert answer.status == 409
    remedy = {"action": "deploy", "args": {"ref": "plain:1", "register": True}}
    assert answer.body["remedy"] == remedy
    # Deploying with registration would pass, and registers nothing to say so.
    passed = await api("POST", "checks/deploy", body={"ref": "plain:1", "register": True})
    assert passed.status == 200
    assert MlflowRegistry(repo).registrations("plain:1") == []


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"output": "out.xlsx"}, "output", "ends in .xlsx, which is not a format"),
        ({"input": ""}, "input", "The input is empty"),
        ({"input": "missing.csv"}, "input", "does not exist"),
        ({"keep_columns": "nope"}, "keep_columns", "Cannot keep column 'nope'"),
        ({"output": "no-such-folder/out.csv"}, "output", "does not exist"),
    ],
)
async def test_score_check_names_the_field_and_writes_nothing(
    api: Api, iris_saved: str, iris_csv: Path, tmp_path: Path, settings, field, says
) -> None:
    spec = {"model": iris_saved, "input": str(iris_csv), "output": str(tmp_path / "o.csv")}
    spec.update(
        {k: str(tmp_path / v) if k in ("input", "output") and v else v for k, v in settings.items()}
    )
    before = sorted(tmp_path.iterdir())
    answer = await api("POST", "checks/score", body={"spec": spec})
    assert answer.status == 400, answer.body
    assert answer.body["field"] == field
    assert says in answer.message
    assert "workflow" not in answer.message  # a one-off run has no workflow
    assert sorted(tmp_path.iterdir()) == before
    jobs = await api("GET", "jobs")
    assert jobs.body["items"] == []


async def test_score_check_passes_a_good_run(
    api: Api, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    spec = {"model": iris_saved, "input": str(iris_csv), "output": str(tmp_path / "o.parquet")}
    answer = await api("POST", "checks/score", body={"spec": spec})
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert not (tmp_path / "o.parquet").exists()


def test_an_output_with_an_unknown_extension_is_refused_not_made_a_folder(
    repo: ModelRepository, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    """The core's rule, whatever the face: `out.xlsx` used to become a folder of CSV files."""
    with pytest.raises(InvalidInput, match=r"out\.xlsx ends in \.xlsx") as refused:
        score(iris_saved, iris_csv, tmp_path / "out.xlsx", repository=repo)
    assert refused.value.field == "output"
    assert not (tmp_path / "out.xlsx").exists()
    # A folder is named without an extension, and still works.
    result = score(iris_saved, iris_csv, tmp_path / "scored", repository=repo)
    assert result.output == tmp_path / "scored" and result.rows == 150
