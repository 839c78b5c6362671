from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _postgres as postgres
import pytest
from click.testing import CliRunner, Result

from jupyter_sparkserve.cli import main


def sparkserve(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def sparkserve_json(*args: str) -> dict:
    result = sparkserve(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_import_list_show_alias_delete_round_trip(mlflow_model_dir: Path) -> None:
    imported = sparkserve_json(
        "models", "import", str(mlflow_model_dir), "--name", "iris",
        "--description", "from disk", "--tag", "team=risk", "--metric", "accuracy=0.97",
    )  # fmt: skip
    assert imported["ref"] == "iris:1"
    assert imported["tags"] == {"team": "risk"}
    assert imported["metrics"] == {"accuracy": 0.97}
    assert imported["flavor"] == "sklearn"
    sparkserve_json("models", "import", str(mlflow_model_dir), "--name", "iris")

    listing = sparkserve_json("models", "list")
    assert listing["total"] == 1
    assert listing["items"][0]["name"] == "iris"
    assert listing["items"][0]["latest_version"] == 2

    assert sparkserve_json("models", "alias", "iris:1", "champion") == {
        "name": "iris",
        "alias": "champion",
        "version": 1,
    }
    assert sparkserve_json("models", "show", "iris@champion")["version"] == 1
    model = sparkserve_json("models", "show", "iris")
    assert [v["version"] for v in model["versions"]] == [2, 1]
    assert model["aliases"] == {"champion": 1}

    human = sparkserve("models", "show", "iris:1")
    assert human.exit_code == 0
    assert "iris:1" in human.output and "team=risk" in human.output

    assert sparkserve_json("models", "alias", "iris", "champion", "--remove")["removed"]
    assert sparkserve_json("models", "delete", "iris:1", "--yes") == {
        "deleted": "iris:1",
        "versions": [1],
    }
    assert sparkserve_json("models", "delete", "iris", "--yes")["versions"] == [2]
    assert sparkserve_json("models", "list")["total"] == 0


def test_human_list_pages_and_says_how_to_see_more(mlflow_model_dir: Path) -> None:
    for name in ["a", "b", "c"]:
        sparkserve_json("models", "import", str(mlflow_model_dir), "--name", name)
    result = sparkserve("models", "list", "--limit", "2")
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["NAME", "LATEST", "VERSIONS"]
    assert [line.split()[0] for line in lines[1:3]] == ["a", "b"]
    assert "sparkserve models list --offset 2" in lines[-1]
    assert sparkserve_json("models", "list", "--filter", "B")["items"][0]["name"] == "b"


def test_errors_are_messages_not_tracebacks(mlflow_model_dir: Path) -> None:
    missing = sparkserve("models", "show", "nope", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.output)["error"] == "NOT_FOUND"

    human = sparkserve("models", "show", "nope")
    assert human.exit_code == 1
    assert human.output.startswith("Error: No model named 'nope'")
    assert "Traceback" not in human.output

    bad_name = sparkserve("models", "import", str(mlflow_model_dir), "--name", "a/b", "--json")
    assert bad_name.exit_code == 1
    assert json.loads(bad_name.output)["error"] == "INVALID_NAME"

    bad_tag = sparkserve("models", "import", str(mlflow_model_dir), "-n", "x", "--tag", "oops")
    assert bad_tag.exit_code == 1 and "KEY=VALUE" in bad_tag.output


def test_delete_asks_first(mlflow_model_dir: Path) -> None:
    sparkserve_json("models", "import", str(mlflow_model_dir), "--name", "iris")
    refused = sparkserve("models", "delete", "iris", "--json")
    assert refused.exit_code == 1
    assert "--yes" in json.loads(refused.output)["message"]
    declined = sparkserve("models", "delete", "iris")  # no terminal to ask on
    assert declined.exit_code == 1
    assert sparkserve_json("models", "list")["total"] == 1


def test_status_and_gc(home: Path) -> None:
    status = sparkserve_json("status")
    assert status["home"] == str(home)
    assert status["repository"]["models"] == 0
    assert sparkserve_json("models", "gc") == {"removed": []}
    too_eager = sparkserve("models", "gc", "--min-age", "0")
    assert too_eager.exit_code == 2 and "60" in too_eager.output


def test_status_never_shows_a_password(postgres_server_url: str, monkeypatch) -> None:
    with postgres.fresh_database(postgres_server_url) as url:
        # Trust authentication ignores the password; the point is that it is never printed.
        monkeypatch.setenv(
            "SPARKSERVE_DATABASE_URL", url.replace("sparkserve@", "sparkserve:s3cret@")
        )
        human = sparkserve("status")
        assert human.exit_code == 0, human.output
        assert "s3cret" not in human.output and "***" in human.output
        assert "s3cret" not in sparkserve("status", "--json").output


def test_unreachable_database_is_a_message_even_in_json(monkeypatch) -> None:
    monkeypatch.setenv("SPARKSERVE_DATABASE_URL", "postgresql+psycopg://nobody:pw@127.0.0.1:1/x")
    result = sparkserve("models", "list", "--json")
    assert result.exit_code == 1
    error = json.loads(result.output)
    assert error["error"] == "INVALID_INPUT"
    assert "Cannot open the repository database" in error["message"]
    assert "pw" not in error["message"]


def test_home_option_overrides_the_environment(tmp_path: Path, mlflow_model_dir: Path) -> None:
    other = tmp_path / "elsewhere"
    result = sparkserve(
        "--home", str(other), "models", "import", str(mlflow_model_dir), "-n", "x", "--json"
    )
    assert result.exit_code == 0, result.output
    assert (other / "repository.db").is_file()
    assert sparkserve_json("models", "list")["total"] == 0


def test_installed_command_runs_the_demo(home: Path) -> None:
    """The console script a newcomer runs: trains, saves, aliases and scores."""
    executable = shutil.which("sparkserve", path=str(Path(sys.executable).parent))
    assert executable, "the sparkserve console script is not installed next to this Python"
    completed = subprocess.run(
        [executable, "demo", "--json"], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["model"]["ref"] == "iris-classifier:1"
    assert result["model"]["aliases"] == ["champion"]
    assert result["accuracy"] > 0.9
    assert len(result["scored"]) == 5
    assert sum(row["predicted"] == row["actual"] for row in result["scored"]) >= 4
    # Registered, deployed, scored over REST with the same answers, then undeployed.
    assert result["registration"]["model_uri"] == "models:/iris-classifier/1"
    assert result["deployment"]["status"] == "stopped"
    names = ["setosa", "versicolor", "virginica"]
    assert [names[p] for p in result["rest_predictions"]] == [
        row["predicted"] for row in result["scored"]
    ]
    assert [s["language"] for s in result["snippets"]] == ["python", "shell"]

    human = subprocess.run([executable, "demo"], capture_output=True, text=True, timeout=300)
    assert human.returncode == 0, human.stderr
    assert "Saved it as iris-classifier:2" in human.stdout
    assert "Scored the same 5 rows over REST: the same answers" in human.stdout
    assert "curl -sS -X POST" in human.stdout
    assert "sparkserve models show iris-classifier@champion" in human.stdout
    listed = subprocess.run(
        [executable, "models", "list", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(listed.stdout)["items"][0]["latest_version"] == 2


def test_demo_on_a_machine_with_no_configuration(tmp_path: Path) -> None:
    """A newcomer's first command: no SPARKSERVE_*, no MLflow URI, just a HOME. The model
    lands in ~/.sparkserve and the output says where."""
    executable = shutil.which("sparkserve", path=str(Path(sys.executable).parent))
    assert executable, "the sparkserve console script is not installed next to this Python"
    user_home = tmp_path.resolve() / "newcomer"
    user_home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SPARKSERVE_", "MLFLOW_", "XDG_"))
    }
    env["HOME"] = str(user_home)
    completed = subprocess.run(
        [executable, "demo"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    repository = user_home / ".sparkserve"
    assert (repository / "repository.db").is_file()
    (saved,) = (repository / "artifacts" / "iris-classifier").iterdir()
    assert (saved / "MLmodel").is_file()
    assert f"in the repository at {repository};" in completed.stdout
    assert f"its model folder is {saved}" in completed.stdout
    # Nothing outside ~/.sparkserve: no mlruns/ or mlflow.db in the working folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newcomer"]


@pytest.mark.parametrize("command", [["--help"], ["models", "--help"], ["--version"]])
def test_help_and_version(command: list[str]) -> None:
    result = sparkserve(*command)
    assert result.exit_code == 0
    assert "sparkserve" in result.output or "Usage" in result.output
