"""Register / Re-register into a real MLflow store, the actions rule, the offline snippet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.errors import Conflict, Remedy
from jupyter_sparkserve.lifecycle import Action, VersionState, enabled_actions
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.snippets import offline_python


@pytest.fixture
def registry(repo: ModelRepository) -> MlflowRegistry:
    return MlflowRegistry(repo)


def test_register_then_reregister_make_mlflow_versions(
    repo: ModelRepository, registry: MlflowRegistry, mlflow_model_dir: Path, iris, home: Path
) -> None:
    repo.import_model(mlflow_model_dir, "iris", description="first")
    first = registry.register("iris")
    assert (first.mlflow_name, first.mlflow_version) == ("iris", 1)
    assert first.model_uri == "models:/iris/1"
    # Run artifacts stay under SPARKSERVE_HOME, not in ./mlruns of whatever the cwd is.
    assert first.source.startswith((home / "mlartifacts").as_uri())
    with pytest.raises(Conflict, match=r"already registered") as refused:
        registry.register("iris:1")
    assert refused.value.remedy == Remedy("reregister", {"ref": "iris:1"})

    again = registry.reregister("iris:1")
    assert again.mlflow_version == 2
    assert [r.mlflow_version for r in registry.registrations("iris:1")] == [2, 1]

    client = mlflow.MlflowClient(repo.settings.mlflow_tracking_uri)
    assert client.get_model_version("iris", "1").description == "first"
    assert client.get_model_version("iris", "2").tags["sparkserve.ref"] == "iris:1"

    features, _ = iris
    expected = repo.load_pyfunc("iris").predict(features)
    loaded = repo.load_pyfunc("models:/iris/2")  # fetched from the MLflow store itself
    np.testing.assert_array_equal(loaded.predict(features), expected)


def test_reregister_needs_a_registration_and_delete_forgets_it(
    repo: ModelRepository, registry: MlflowRegistry, mlflow_model_dir: Path
) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    repo.import_model(mlflow_model_dir, "iris")
    with pytest.raises(Conflict, match=r"never registered") as refused:
        registry.reregister("iris")
    assert refused.value.remedy == Remedy("register", {"ref": "iris:2"})
    registry.register("iris:2")
    assert registry.registrations("iris:1") == []
    repo.delete_version("iris:2")
    repo.import_model(mlflow_model_dir, "iris")
    assert registry.registrations("iris:3") == []


@pytest.mark.parametrize(
    ("registered", "deployed", "expected"),
    [
        (False, False, ["register", "score", "build_image", "kubernetes", "delete"]),
        (
            True,
            False,
            ["reregister", "deploy", "score", "build_image", "kubernetes", "snippets", "delete"],
        ),
        (True, True, ["reregister", "undeploy", "score", "build_image", "kubernetes", "snippets"]),
    ],
)
def test_actions_follow_the_lifecycle(registered: bool, deployed: bool, expected: list[str]):
    actions = enabled_actions(VersionState(registered=registered, deployed=deployed))
    assert [action.value for action in actions] == expected
    # The documented rules, said once more as properties.
    assert (Action.DEPLOY in actions) == (registered and not deployed)
    assert (Action.UNDEPLOY in actions) == deployed


def test_offline_snippet_runs_and_predicts(
    repo: ModelRepository, registry: MlflowRegistry, mlflow_model_dir: Path, iris, tmp_path
) -> None:
    version = repo.import_model(mlflow_model_dir, "iris")
    registration = registry.register("iris")
    snippet = offline_python(version, registration, repo.settings.mlflow_tracking_uri)
    assert "models:/iris/1" in snippet.code
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code)
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    features, _ = iris
    expected = repo.load_pyfunc("iris").predict(features.head(3))
    assert completed.stdout.strip() == str(expected)  # the snippet prints the array


def test_snippet_never_holds_a_password(repo, mlflow_model_dir) -> None:
    from jupyter_sparkserve.deploy.mlflow import Registration
    from jupyter_sparkserve.repository.database import utcnow

    version = repo.import_model(mlflow_model_dir, "iris")
    registration = Registration("iris", 1, "iris", 1, "s3://b/m", "r", utcnow())
    snippet = offline_python(version, registration, "https://me:s3cret@mlflow.example/")
    assert "s3cret" not in snippet.code
    assert 'os.environ["MLFLOW_TRACKING_URI"]' in snippet.code
    # A registry of its own, with its own password: read from its own variable.
    tracking, registry = "https://mlflow.example/", "https://me:other@registry.example/"
    snippet = offline_python(version, registration, tracking, registry)
    assert "other" not in snippet.code and repr(tracking) in snippet.code
    assert 'registry_uri=os.environ["MLFLOW_REGISTRY_URI"]' in snippet.code
    compile(snippet.code, "snippet", "exec")  # still python


def test_cli_register_reregister_and_snippets(mlflow_model_dir: Path) -> None:
    def run(*args: str) -> dict | list:
        result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    run("models", "import", str(mlflow_model_dir), "--name", "iris")
    refused = CliRunner().invoke(main, ["snippets", "iris", "--json"])
    assert refused.exit_code == 1
    assert "register it first" in json.loads(refused.stdout)["message"]
    assert run("register", "iris")["model_uri"] == "models:/iris/1"
    assert run("reregister", "iris:1")["model_uri"] == "models:/iris/2"
    (snippet,) = run("snippets", "iris")
    assert snippet["language"] == "python" and "models:/iris/2" in snippet["code"]
