"""`sparkserve demo`: the product's tour on the embedded defaults, with no configuration.

It trains a small classifier on a dataset that ships with scikit-learn (nothing is
downloaded), saves it to the repository, points the `champion` alias at it, loads it back by
alias and scores rows it has not seen, registers it in MLflow, deploys it as a local REST
endpoint, scores the same rows over REST, shows the python and curl snippets, and undeploys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from .deploy.deployments import Deployments
from .deploy.mlflow import MlflowRegistry
from .lifecycle import deployment_snippets
from .repository import ModelRepository, ModelVersion

DEMO_MODEL = "iris-classifier"
DEMO_ALIAS = "champion"


@dataclass
class DemoResult:
    version: ModelVersion
    accuracy: float
    scored: list[dict[str, Any]] = field(default_factory=list)
    registration: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    rest_predictions: list[Any] = field(default_factory=list)
    snippets: list[dict[str, str]] = field(default_factory=list)

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
        }


def run_demo(
    repository: ModelRepository,
    report: Callable[[str], None] = lambda _message: None,
    *,
    keep_running: bool = False,
) -> DemoResult:
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

    registration = MlflowRegistry(repository).register(version.ref)
    report(f"Registered it in MLflow as {registration.model_uri}")

    deployments = Deployments(repository)
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
