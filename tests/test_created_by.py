"""Who did what: the user a version, a deployment and a job were made by (`created_by`). The
core records the name a face gives (the REST API: the authenticated Jupyter user's), else this
process's user (SPARKSERVE_USER, else the OS user); the REST API and the CLI show it, and a
schema 4 repository gains it on open, on SQLite and PostgreSQL, with its rows kept."""

from __future__ import annotations

import asyncio
import getpass
import time
from pathlib import Path
from typing import Any

import _named_users
import pytest
from _api import Api, api_fixture  # noqa: F401 (fixture)
from click.testing import CliRunner
from conftest import FAST_SAVE
from sqlalchemy import insert, inspect, text

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy import tables as deploy_tables
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository import database as db
from jupyter_sparkserve.workflows import JobRunner, WorkflowSpec

pytestmark = pytest.mark.timeout(400)
OS_USER = getpass.getuser()


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def field(output: str, label: str) -> str:
    """The value `fields` printed for `label` (aligned with spaces)."""
    found = [line.strip() for line in output.splitlines() if line.strip().startswith(label + " ")]
    assert len(found) == 1, output
    return found[0][len(label) :].strip()


def test_a_version_records_the_name_given_else_this_process_user(
    repo: ModelRepository, iris_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKSERVE_USER", raising=False)
    first = repo.save(iris_model, "iris", **FAST_SAVE)
    assert first.created_by == OS_USER != ""
    monkeypatch.setenv("SPARKSERVE_USER", "team-bot")
    assert repo.save(iris_model, "iris", **FAST_SAVE).created_by == "team-bot"
    assert repo.import_model(first.path, "iris", by="alice").created_by == "alice"
    assert [v.created_by for v in repo.get_model("iris").versions] == [
        "alice",
        "team-bot",
        OS_USER,
    ]
    assert repo.resolve("iris:2").to_dict()["created_by"] == "team-bot"
    # The model list carries its latest version's.
    assert repo.list_models().items[0].to_dict()["created_by"] == "alice"

    assert field(cli("models", "show", "iris:2"), "created by") == "team-bot"
    table = cli("models", "show", "iris").splitlines()
    assert table[2].split()[:4] == ["VERSION", "FLAVOR", "CREATED", "BY"]
    assert [line.split()[4] for line in table[3:6]] == ["alice", "team-bot", OS_USER]


def test_deployments_and_jobs_record_who_started_them(
    repo: ModelRepository, mlflow_model_dir: Path, iris_csv: Path, tmp_path: Path
) -> None:
    version = repo.import_model(mlflow_model_dir, "iris")
    deployments = Deployments(repo)
    begun = deployments.begin(version.ref, register=True, by="carol")  # not launched
    assert begun.created_by == "carol"
    assert deployments.undeploy(begun.id).to_dict()["created_by"] == "carol"
    own = deployments.begin(version.ref)
    deployments.undeploy(own.id)
    assert [d.created_by for d in deployments.list()] == [OS_USER, "carol"]
    listed = cli("deployments", "list", "--all").splitlines()
    assert listed[0].split() == ["ID", "MODEL", "TARGET", "STATUS", "BY", "URL"]
    assert {line.split()[0]: line.split()[4] for line in listed[1:]} == {
        own.id: OS_USER,
        begun.id: "carol",
    }
    assert field(cli("deployments", "show", begun.id), "deployed by") == "carol"

    runner = JobRunner(repo)
    spec = WorkflowSpec(model=version.ref, input=str(iris_csv), output=str(tmp_path / "o.csv"))
    job = runner.submit(spec, by="dave")
    assert job.created_by == "dave"
    done = runner.wait(job.id, timeout=240)
    assert (done.status, done.to_dict()["created_by"]) == ("succeeded", "dave")
    jobs = cli("jobs", "list").splitlines()
    assert jobs[0].split()[-1] == "BY" and jobs[1].split()[-1] == "dave"
    assert field(cli("jobs", "show", job.id), "created by") == "dave"


def test_a_schema_4_repository_gains_created_by_with_its_rows_kept(
    any_database: str, mlflow_model_dir: Path
) -> None:
    """The 4 -> 5 step on each database: the column added to versions, deployments and jobs,
    '' in the rows written before, the user in the rows written after."""
    with ModelRepository(Settings.from_env()) as repo:
        old = repo.import_model(mlflow_model_dir, "iris", by="nobody-sees-this")
        with repo.engine.begin() as conn:
            for table in ("model_versions", "deployments", "jobs"):
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN created_by"))
            now = db.utcnow()
            conn.execute(  # a deployment as schema 4 wrote it
                insert(deploy_tables.deployments).values(
                    id="old", model_id=repo.model_id(conn, "iris"), version=1, target="local",
                    status="stopped", url="", model_uri="models:/iris/1", details={}, error="",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            conn.execute(
                text("UPDATE sparkserve_schema SET value = '4' WHERE key = 'schema_version'")
            )

    with ModelRepository(Settings.from_env()) as repo:
        assert repo.schema_version_found == 4
        with repo.engine.connect() as conn:
            assert db.read_schema_version(conn) == db.SCHEMA_VERSION == 5
            for table in ("model_versions", "deployments", "jobs"):
                assert "created_by" in {c["name"] for c in inspect(conn).get_columns(table)}
        kept = repo.resolve("iris:1")
        assert (kept.path, kept.created_by) == (old.path, "")
        assert Deployments(repo).get("old").created_by == ""
        assert repo.import_model(mlflow_model_dir, "iris", by="erin").created_by == "erin"
        # A database a step ahead of its stamp (written between two releases) upgrades too.
        with repo.engine.begin() as conn:
            conn.execute(
                text("UPDATE sparkserve_schema SET value = '4' WHERE key = 'schema_version'")
            )
        assert db.ensure_schema(repo.engine) == 4
        assert [v.created_by for v in repo.get_model("iris").versions] == ["erin", ""]


# ----------------------------------------------------------------------------- REST API


def _config(tmp_path_factory: pytest.TempPathFactory, *extra: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ServerApp": {"jpserver_extensions": {"jupyter_sparkserve": True}},
        "SparkserveApp": {"allowed_dirs": [str(tmp_path_factory.getbasetemp())]},
    }
    for more in extra:
        for section, traits in more.items():
            config.setdefault(section, {}).update(traits)
    return config


async def _settled(api: Api, deployment_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while (answer := await api("GET", f"deployments/{deployment_id}")).body["status"] == "starting":
        assert time.monotonic() < deadline, "the deployment is still starting"
        await asyncio.sleep(0.2)
    return answer.body


class TestANamedJupyterUser:
    """A server whose identity provider names its users (as JupyterHub's do) records them."""

    @pytest.fixture
    def jp_server_config(self, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        return _config(tmp_path_factory, _named_users.server_config("alice"))

    async def test_imports_deploys_and_jobs_are_recorded_as_the_jupyter_user(
        self, api: Api, repo: ModelRepository, mlflow_model_dir: Path, iris_csv: Path
    ) -> None:
        body = {"source": str(mlflow_model_dir), "name": "iris"}
        imported = await api("POST", "models", body=body)
        assert (imported.status, imported.body["created_by"]) == (201, "alice"), imported.body
        assert (await api("GET", "models")).body["items"][0]["created_by"] == "alice"
        assert (await api("GET", "models/iris/versions/1")).body["created_by"] == "alice"
        assert repo.resolve("iris:1").created_by == "alice"

        MlflowRegistry(repo).register("iris:1")
        created = await api("POST", "deployments", body={"ref": "iris:1"})
        assert (created.status, created.body["created_by"]) == (202, "alice"), created.body
        running = await _settled(api, created.body["id"])
        assert (running["status"], running["created_by"]) == ("running", "alice"), running
        stopped = await api("DELETE", f"deployments/{created.body['id']}")
        assert stopped.body["created_by"] == "alice"

        output = iris_csv.with_name("scored.csv")
        spec = {"model": "iris:1", "input": str(iris_csv), "output": str(output)}
        job = await api("POST", "jobs", body={"spec": spec})
        assert (job.status, job.body["created_by"]) == (202, "alice"), job.body
        assert JobRunner(repo).wait(job.body["id"], timeout=240).status == "succeeded"
        listed = (await api("GET", "jobs")).body["items"]
        assert [(j["id"], j["created_by"]) for j in listed] == [(job.body["id"], "alice")]


class TestJupyterServersOwnIdentityProvider:
    """jupyter_server's own token provider names nobody (an "Anonymous ..." user per browser):
    the one person holding the token is the server's OS user, or SPARKSERVE_USER."""

    @pytest.fixture
    def jp_server_config(self, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        return _config(tmp_path_factory)

    async def test_an_import_is_recorded_as_the_server_user(
        self, api: Api, mlflow_model_dir: Path
    ) -> None:
        body = {"source": str(mlflow_model_dir), "name": "iris"}
        imported = await api("POST", "models", body=body)
        assert (imported.status, imported.body["created_by"]) == (201, OS_USER), imported.body
