"""Shared fixtures. Every test gets its own SPARKSERVE_HOME: nothing touches ~/.sparkserve.

Tests that need a real component (a browser, a container engine, Spark, ...) call
`require_component`: on a developer machine a missing component skips the test, in CI
(`CI=true`) it fails it, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _postgres as postgres
import pandas as pd
import pytest

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository

# Jupyter server fixtures (jp_fetch, ...). Its autouse event-loop fixtures apply to every test.
# The clouds' fakes are session-wide (one moto, one fake ARM, one registry on port 443);
# fixtures imported into several modules would each start their own.
pytest_plugins = ("pytest_jupyter.jupyter_server", "_aws", "_azure")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TESTS_DIR = Path(__file__).parent
ARTIFACTS_DIR = TESTS_DIR / "artifacts"  # screenshots and other things worth looking at

# Requirements inference (MLflow loads the model in a subprocess) is what makes a save slow;
# tests that are not about it pin the requirements instead.
FAST_SAVE = {"pip_requirements": ["scikit-learn", "pandas"]}


def pytest_configure(config: pytest.Config) -> None:
    """No warm scorer unless a test asks for one (tests/test_warm.py), and never in the
    user's own socket folder: set for the whole session, so that kernels, servers and other
    processes started by session or module fixtures inherit it too."""
    os.environ["SPARKSERVE_WARM_SCORER"] = "off"
    os.environ["SPARKSERVE_RUN_DIR"] = tempfile.mkdtemp(prefix="ss-tests-")


def pytest_unconfigure(config: pytest.Config) -> None:
    from jupyter_sparkserve.warm import client

    client.stop()  # any a test left behind
    shutil.rmtree(os.environ["SPARKSERVE_RUN_DIR"], ignore_errors=True)


def require_component(name: str, available: bool, how_to_get_it: str) -> None:
    if available:
        return
    message = f"{name} is not available: {how_to_get_it}"
    if IN_CI:
        pytest.fail(f"{message} (CI must run every test; .ci/run installs it)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "sparkserve-home"
    monkeypatch.setenv("SPARKSERVE_HOME", str(home))
    monkeypatch.setenv("SPARKSERVE_WARM_SCORER", "off")  # as pytest_configure set it
    for variable in (
        "SPARKSERVE_DATABASE_URL",
        "SPARKSERVE_ARTIFACT_ROOT",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def warm_run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private folder for warm scorer sockets, under /tmp (a pytest path is too long for a
    Unix socket); every warm scorer in it is stopped afterwards. Tests set the mode."""
    from jupyter_sparkserve.warm import client, protocol

    path = Path(tempfile.mkdtemp(prefix="ss-warm-"))
    monkeypatch.setenv(protocol.RUN_DIR_ENV, str(path))
    yield path
    client.stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    bin_dir = postgres.find_bin_dir()
    require_component(
        "PostgreSQL", bin_dir is not None, "apt-get install postgresql (.ci/run does)"
    )
    assert bin_dir is not None
    with postgres.postgres_server(bin_dir) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test on the default SQLite repository and on a fresh PostgreSQL database
    (through SPARKSERVE_DATABASE_URL, so subprocesses use it too)."""
    if request.param == "sqlite":
        yield request.param
        return
    with postgres.fresh_database(request.getfixturevalue("postgres_server_url")) as url:
        monkeypatch.setenv("SPARKSERVE_DATABASE_URL", url)
        yield request.param


@pytest.fixture
def repo(home: Path) -> Iterator[ModelRepository]:
    repository = ModelRepository(Settings.from_env())
    yield repository
    repository.close()


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    return data.data, data.target


@pytest.fixture(scope="session")
def iris_model(iris: tuple[pd.DataFrame, pd.Series]):
    from sklearn.linear_model import LogisticRegression

    features, target = iris
    return LogisticRegression(max_iter=500).fit(features, target)


@pytest.fixture(scope="session")
def mlflow_model_dir(tmp_path_factory: pytest.TempPathFactory, iris, iris_model) -> Path:
    """One scikit-learn MLflow model folder, saved once, for tests that import copies."""
    import mlflow.sklearn

    path = tmp_path_factory.mktemp("mlflow-model") / "iris"
    mlflow.sklearn.save_model(iris_model, str(path), input_example=iris[0].head(3), **FAST_SAVE)
    return path


@pytest.fixture
def registered(repo: ModelRepository, mlflow_model_dir: Path) -> Iterator[str]:
    """iris:1, registered in MLflow; afterwards no endpoint is left running."""
    from jupyter_sparkserve.deploy.deployments import Deployments
    from jupyter_sparkserve.deploy.mlflow import MlflowRegistry

    repo.import_model(mlflow_model_dir, "iris")
    MlflowRegistry(repo).register("iris:1")
    yield "iris:1"
    service = Deployments(repo)
    deadline = time.monotonic() + 180
    while any(d.status == "starting" for d in service.list(active_only=True)):
        assert time.monotonic() < deadline
        time.sleep(0.2)  # a server's background deploy (a thread) must finish first
    for deployment in service.list(active_only=True):
        service.undeploy(deployment.id)


@pytest.fixture
def iris_csv(tmp_path: Path, iris) -> Path:
    """The iris features as a CSV file."""
    path = tmp_path / "iris.csv"
    iris[0].to_csv(path, index=False)
    return path


@pytest.fixture
def iris_saved(repo: ModelRepository, iris, iris_model) -> str:
    """The reference of the iris classifier saved to the test's repository."""
    return repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE).ref


@pytest.fixture
def slow_model(repo: ModelRepository, tmp_path: Path) -> Callable[[float], str]:
    """Saves a model that sleeps `delay` seconds in each predict call, and touches the file
    tmp_path/predicting when a call starts; returns its reference."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    marker = tmp_path / "predicting"

    class SlowModel(mlflow.pyfunc.PythonModel):  # defined here: pickled by value
        def __init__(self, delay: float) -> None:
            self.delay = delay

        def predict(self, context, model_input, params=None):
            Path(marker).touch()
            time.sleep(self.delay)
            return model_input["x1"] + model_input["x2"]

    def save(delay: float) -> str:
        # A signature given, not inferred: inferring it would call predict.
        signature = ModelSignature(
            inputs=Schema([ColSpec("double", "x1"), ColSpec("double", "x2")]),
            outputs=Schema([ColSpec("double")]),
        )
        model = SlowModel(delay)
        return repo.save(model, "slow", signature=signature, pip_requirements=["pandas"]).ref

    return save


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    """40 small CSV files: 40 batches, so 40 predict calls."""
    folder = tmp_path / "parts"
    folder.mkdir()
    for index in range(40):
        pd.DataFrame({"x1": [float(index)] * 10, "x2": [1.0] * 10}).to_csv(
            folder / f"part-{index:02d}.csv", index=False
        )
    return folder
