"""Repository speed against MLflow's own model registry, measured in the same run.

What the sidebar and every `NAME@ALIAS` reference pay for:
  - the first page (50) of a model list holding N models, with latest version and aliases;
  - resolving `name@alias` to a model version;
  - the cost a save adds on top of `mlflow.<flavor>.save_model` itself.
Both stores are SQLite files in a temporary folder; MLflow's is its SQLAlchemy tracking and
registry store, queried through `MlflowClient`.

    python benchmarks/repository.py [--models 2000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

warnings.filterwarnings("ignore")


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from jupyter_sparkserve.config import Settings
    from jupyter_sparkserve.repository import ModelRepository

    workdir = Path(tempfile.mkdtemp(prefix="sparkserve-bench-"))
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(features, target)
    requirements = ["scikit-learn"]
    source = workdir / "model"
    mlflow.sklearn.save_model(model, str(source), pip_requirements=requirements)

    ours = ModelRepository(Settings.from_env(home=workdir / "sparkserve"))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")

    print(f"Filling both stores with {args.models} models (one version each)...", flush=True)
    start = time.perf_counter()
    for index in range(args.models):
        ours.import_model(source, f"model-{index:05d}", tags={"team": "bench"})
    ours.set_alias("model-00000:1", "champion")
    fill_ours = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(args.models):
        name = f"model-{index:05d}"
        client.create_registered_model(name, tags={"team": "bench"})
        client.create_model_version(name, source=str(source))
    client.set_registered_model_alias("model-00000", "champion", "1")
    fill_mlflow = time.perf_counter() - start

    rows = []

    def compare(what: str, our_call: Callable[[], object], mlflow_call: Callable[[], object]):
        our_time = timed(our_call, args.repeat)
        mlflow_time = timed(mlflow_call, args.repeat)
        rows.append((what, our_time, mlflow_time))

    compare(
        f"first page of 50 of {args.models} models",
        lambda: ours.list_models(limit=50),
        lambda: client.search_registered_models(max_results=50),
    )
    compare(
        "resolve name@alias",
        lambda: ours.resolve("model-00000@champion"),
        lambda: client.get_model_version_by_alias("model-00000", "champion"),
    )

    save_dir = workdir / "saves"
    counter = iter(range(10**6))

    def mlflow_save() -> None:
        mlflow.sklearn.save_model(
            model, str(save_dir / str(next(counter))), pip_requirements=requirements
        )

    compare(
        "save a scikit-learn model (sparkserve vs mlflow.sklearn.save_model)",
        lambda: ours.save(model, "saved", pip_requirements=requirements),
        mlflow_save,
    )

    print(f"filled in {fill_ours:.1f} s (sparkserve) and {fill_mlflow:.1f} s (MLflow registry)")
    print(f"{'operation':<70} {'sparkserve':>12} {'MLflow':>12} {'ratio':>7}")
    for what, our_time, mlflow_time in rows:
        print(
            f"{what:<70} {our_time * 1000:>10.2f}ms {mlflow_time * 1000:>10.2f}ms "
            f"{mlflow_time / our_time:>6.1f}x"
        )
    print("(ratio = MLflow time / sparkserve time; above 1 means sparkserve is faster)")
    ours.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
