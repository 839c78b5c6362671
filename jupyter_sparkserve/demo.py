"""`sparkserve demo`: the product's tour on the embedded defaults, with no configuration.

It trains a small classifier on a dataset that ships with scikit-learn (nothing is
downloaded), saves it to the repository, points the `champion` alias at it, loads it back by
alias and scores rows it has not seen, registers it in MLflow, deploys it as a local REST
endpoint, scores the same rows over REST, shows the python and curl snippets, and undeploys.
`next_steps` says how the user reaches the installed commands and the demo notebook next.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from .deploy.deployments import Deployments
from .deploy.mlflow import MlflowRegistry
from .lifecycle import deployment_snippets
from .repository import ModelRepository, ModelVersion

DEMO_MODEL = "iris-classifier"
DEMO_ALIAS = "champion"
# In a checkout (where `make demo` runs): the notebook `make lab` opens.
DEMO_NOTEBOOK = Path("notebooks") / "sparkserve-demo.ipynb"


@dataclass(frozen=True)
class NextSteps:
    """What a face needs to word the commands that come after the demo."""

    # The folder to put before a command's name ("" when the shell finds it by name): after
    # `make demo` the virtual environment is not activated, so `sparkserve` alone fails.
    scripts: str
    activate: str | None  # the script that puts `scripts` on PATH, when there is one
    notebook: str | None  # the demo notebook, when run from a checkout that has it
    lab_installed: bool  # JupyterLab is installed next to this Python

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def next_steps(cwd: Path | None = None) -> NextSteps:
    cwd = cwd or Path.cwd()
    in_venv = sys.prefix != sys.base_prefix
    activated = os.environ.get("VIRTUAL_ENV") == sys.prefix
    scripts, activate = "", None
    if in_venv and not activated:
        folder = Path(sysconfig.get_path("scripts"))
        # Relative when it is below the working folder: `.venv/bin/...` reads better.
        shown = folder.relative_to(cwd) if folder.is_relative_to(cwd) else folder
        scripts = f"{shown}{os.sep}"
        if (folder / "activate").is_file():
            activate = f"{shown}{os.sep}activate"
    notebook = (cwd / DEMO_NOTEBOOK).is_file()
    return NextSteps(
        scripts=scripts,
        activate=activate,
        notebook=str(DEMO_NOTEBOOK) if notebook else None,
        lab_installed=importlib.util.find_spec("jupyterlab") is not None,
    )


@dataclass
class DemoResult:
    version: ModelVersion
    accuracy: float
    scored: list[dict[str, Any]] = field(default_factory=list)
    registration: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    rest_predictions: list[Any] = field(default_factory=list)
    snippets: list[dict[str, str]] = field(default_factory=list)
    next: NextSteps = field(default_factory=next_steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.to_dict(),
            "alias": DEMO_ALIAS,
            "accuracy": self.accuracy,
            "scored": self.scored,
            "registration": self.registration,
            "deployment": self.deployment,
            "rest_predictions": self.rest_predictions,
            "snippets": self.snippets,
            "next": self.next.to_dict(),
        }


def run_demo(
    repository: ModelRepository,
    report: Callable[[str], None] = lambda _message: None,
    *,
    keep_running: bool = False,
    starting: Callable[[str], None] = lambda _message: None,
) -> DemoResult:
    """`report` hears what each step did; `starting` hears, before each step that takes
    seconds, what it is about to do (so no face sits silent through MLflow's work)."""
    starting("Training a classifier on the iris dataset (scikit-learn's own copy)")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    features, target = iris.data, iris.target
    train_x, test_x, train_y, test_y = train_test_split(
        features, target, test_size=0.3, random_state=7, stratify=target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(train_x, train_y)
    accuracy = float(model.score(test_x, test_y))
    report(
        f"Trained a logistic regression on the iris dataset ({len(train_x)} rows); "
        f"accuracy on {len(test_x)} held-out rows: {accuracy:.3f}"
    )

    starting("Saving it to the repository (MLflow writes the model folder and its requirements)")
    version = repository.save(
        model,
        DEMO_MODEL,
        description="Logistic regression on the iris flowers dataset (sparkserve demo).",
        tags={"dataset": "iris", "framework": "scikit-learn", "created_by": "sparkserve demo"},
        metrics={"accuracy": accuracy},
        input_example=test_x.head(3),
    )
    report(
        f"Saved it as {version.ref} ({version.flavor} flavor, signature with "
        f"{len(version.signature['inputs']) if version.signature else 0} inputs) in the "
        f"repository at {repository.settings.home}; its model folder is {version.path}"
    )

    repository.set_alias(version.ref, DEMO_ALIAS)
    report(f"Pointed the alias {DEMO_MODEL}@{DEMO_ALIAS} at version {version.version}")

    starting(f"Loading {DEMO_MODEL}@{DEMO_ALIAS} back and scoring new rows")
    loaded = repository.load_pyfunc(f"{DEMO_MODEL}@{DEMO_ALIAS}")
    sample = test_x.head(5)
    predictions = loaded.predict(sample)
    names = list(iris.target_names)
    scored = [
        {**row, "predicted": names[int(prediction)], "actual": names[int(actual)]}
        for row, prediction, actual in zip(
            sample.to_dict(orient="records"), predictions, test_y.head(5), strict=True
        )
    ]
    report(f"Loaded {DEMO_MODEL}@{DEMO_ALIAS} back and scored {len(scored)} new rows")

    starting("Registering it in MLflow")
    registration = MlflowRegistry(repository).register(version.ref)
    report(f"Registered it in MLflow as {registration.model_uri}")

    deployments = Deployments(repository)
    starting("Deploying it as a local REST endpoint (a new process loads the model)")
    deployment = deployments.deploy(version.ref)
    report(f"Deployed it as a REST endpoint at {deployment.url} (deployment {deployment.id})")
    try:
        response = requests.post(
            f"{deployment.url}/invocations",
            json={"dataframe_split": sample.to_dict(orient="split", index=False)},
            timeout=60,
        )
        response.raise_for_status()
        rest_predictions = response.json()["predictions"]
        agreed = rest_predictions == predictions.tolist()
        report(
            f"Scored the same {len(rest_predictions)} rows over REST: "
            + ("the same answers" if agreed else f"DIFFERENT answers: {rest_predictions}")
        )
        found = deployment_snippets(repository, deployment.id).snippets
    finally:
        if not keep_running:
            starting("Undeploying it")
            deployment = deployments.undeploy(deployment.id)
            report("Undeployed it (run with --keep-running to keep the endpoint up)")
    return DemoResult(
        version=repository.resolve(version.ref),
        accuracy=accuracy,
        scored=scored,
        registration=registration.to_dict(),
        deployment=deployment.to_dict(),
        rest_predictions=rest_predictions,
        snippets=[snippet.to_dict() for snippet in found],
    )
