"""A team repository: two users (two SPARKSERVE_HOMEs, no shared folder) on one real
PostgreSQL database and one bucket on moto's S3 server save, alias, deploy and score each
other's versions; a save killed between its upload and its commit leaves no version and gc
deletes its objects."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _postgres as postgres
import numpy as np
import pandas as pd
import pytest
import requests
from _aws import SECRET_KEY, Aws
from _s3 import Team, mlflow_server, new_bucket
from conftest import FAST_SAVE
from test_concurrency import _kill_when

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.errors import Conflict, InvalidInput, NotFound
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring.offline import score
from jupyter_sparkserve.workflows import JobRunner, WorkflowSpec

WORKER = str(Path(__file__).with_name("_worker.py"))
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def team(aws: Aws, postgres_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    # boto3's S3-only variable, straight to moto (the session's AWS_ENDPOINT_URL is a proxy).
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws.moto_url)
    s3 = aws.client("s3")
    bucket = new_bucket(s3)
    root = f"s3://{bucket}/team-models"
    monkeypatch.setenv("SPARKSERVE_ARTIFACT_ROOT", root)
    with postgres.fresh_database(postgres_server_url) as url:
        monkeypatch.setenv("SPARKSERVE_DATABASE_URL", url)
        yield Team(url, bucket, root, s3)


@pytest.fixture
def alice(team: Team, tmp_path: Path) -> Iterator[ModelRepository]:
    repository = ModelRepository(team.settings(tmp_path / "alice"))
    yield repository
    repository.close()


@pytest.fixture
def bob(team: Team, tmp_path: Path) -> Iterator[ModelRepository]:
    repository = ModelRepository(team.settings(tmp_path / "bob"))
    yield repository
    repository.close()


def _answer(url: str, rows: pd.DataFrame) -> list:
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
    answer = requests.post(f"{url}/invocations", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def test_two_users_save_alias_deploy_and_score_each_others_versions(
    team: Team, alice: ModelRepository, bob: ModelRepository, iris, iris_model, tmp_path: Path
) -> None:
    features, target = iris
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, target)
    assert not (alice.settings.home / "artifacts").exists()  # nothing on a local root

    first = alice.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
    relative = alice.artifacts.relative_of(first.path)
    assert f"team-models/{relative}/MLmodel" in team.objects()
    # Bob sees it; listing and resolving download nothing to his machine.
    seen = bob.get_model("iris").versions[0]
    assert (seen.ref, seen.size_bytes) == ("iris:1", first.size_bytes)
    assert seen.path.is_relative_to(bob.settings.home) and not seen.path.exists()
    second = bob.save(tree, "iris", input_example=features.head(3), **FAST_SAVE)
    assert second.version == 2
    bob.set_alias("iris:1", "champion")
    alice.set_alias("iris:2", "challenger")
    assert alice.resolve("iris@champion").version == 1
    assert bob.resolve("iris@challenger").version == 2
    assert not bob.resolve("iris:1").path.exists()

    # Each scores the other's version (downloaded into their own cache): the answers are the
    # model's own predictions, row for row.
    rows = pd.concat([features] * 4, ignore_index=True)
    rows.to_csv(tmp_path / "in.csv", index=False)
    score("iris@champion", tmp_path / "in.csv", tmp_path / "bob.parquet", repository=bob)
    score("iris@challenger", tmp_path / "in.csv", tmp_path / "alice.parquet", repository=alice)
    np.testing.assert_array_equal(
        pd.read_parquet(tmp_path / "bob.parquet")["prediction"], iris_model.predict(rows)
    )
    np.testing.assert_array_equal(
        pd.read_parquet(tmp_path / "alice.parquet")["prediction"], tree.predict(rows)
    )
    assert (bob.resolve("iris:1").path / "MLmodel").is_file()  # now in Bob's cache

    # Each deploys the other's version to a local endpoint (registered on the way).
    deployed = []
    try:
        for who, ref in ((bob, "iris@champion"), (alice, "iris@challenger")):
            deployment = Deployments(who).deploy(ref, "local", register=True)
            deployed.append((who, deployment))
            assert deployment.status == "running", deployment.error
        expected = (iris_model.predict(features), tree.predict(features))
        for (_who, deployment), wanted in zip(deployed, expected, strict=True):
            assert _answer(deployment.url, features) == wanted.tolist()
        # Both deployments are in the shared database: each user sees the other's.
        assert {d.id for d in Deployments(alice).list(active_only=True)} == {
            d.id for _who, d in deployed
        }
        with pytest.raises(Conflict, match="undeploy first"):
            alice.delete_version("iris:1")  # Bob's endpoint serves it
    finally:
        for who, deployment in deployed:
            Deployments(who).undeploy(deployment.id)

    # Deleting a version deletes its objects; the other version's stay. Bob's cached copy
    # of it goes with his next gc.
    cached = bob.artifacts.path(relative)
    alice.delete_version("iris:1")
    assert not team.objects(relative + "/")
    assert team.objects(bob.artifacts.relative_of(second.path) + "/")
    with pytest.raises(NotFound):
        bob.resolve("iris:1")
    assert (cached / "MLmodel").is_file()
    assert bob.collect_garbage(min_age_seconds=0) == [cached] and not cached.exists()
    bob.delete_model("iris")
    assert team.objects() == ["team-models/.sparkserve-repository"]


def test_a_score_job_of_one_user_runs_on_the_others_version(
    alice: ModelRepository, bob: ModelRepository, iris, iris_model, tmp_path: Path
) -> None:
    """The job's own process fetches the version into Bob's cache; Alice sees Bob's job."""
    features, _ = iris
    alice.save(iris_model, "iris", **FAST_SAVE)
    features.to_csv(tmp_path / "in.csv", index=False)
    runner = JobRunner(bob)
    job = runner.submit(
        WorkflowSpec(model="iris", input=str(tmp_path / "in.csv"), output=str(tmp_path / "o.csv"))
    )
    assert not bob.resolve("iris:1").path.exists()  # submitting downloads nothing
    done = runner.wait(job.id, timeout=240)
    assert done.status == "succeeded", done.error
    scored = pd.read_csv(tmp_path / "o.csv")
    np.testing.assert_array_equal(scored["prediction"], iris_model.predict(features))
    assert (bob.resolve("iris:1").path / "MLmodel").is_file()
    assert [j.id for j in JobRunner(alice).list()] == [job.id]


def test_readers_fetching_at_once_each_get_the_whole_folder(
    team: Team, alice: ModelRepository, bob: ModelRepository, iris, iris_model
) -> None:
    """A fetch downloads into a staging folder and renames it into the cache: a reader that
    finds the folder never finds half of it."""
    saved = alice.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    wanted = sorted(p.relative_to(saved.path) for p in saved.path.rglob("*") if p.is_file())
    seen = bob.resolve("iris:1")
    with ThreadPoolExecutor(6) as pool:
        folders = list(pool.map(lambda _: seen.local_path(), range(6)))
    for folder in folders:
        assert folder == seen.path
        assert sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) == wanted
    staging = bob.artifacts.path(".staging")
    assert not staging.exists() or not any(staging.iterdir())
    assert bob.resolve("iris:1").local_path() == seen.path  # cached: reused as it is


def test_a_shared_mlflow_server_keeps_registered_models_in_the_same_bucket(
    team: Team, iris, iris_model, tmp_path: Path
) -> None:
    """With one tracking server (artifacts in the team's bucket), a version Alice registered
    and deployed is deployed by Bob from the same MLflow model: no file passes between them."""
    features, _ = iris
    mlflow_root = f"s3://{team.bucket}/mlflow"
    with mlflow_server(mlflow_root, tmp_path / "mlflow-server") as url:
        alice = ModelRepository(team.settings(tmp_path / "alice", mlflow=url))
        bob = ModelRepository(team.settings(tmp_path / "bob", mlflow=url))
        try:
            alice.save(iris_model, "iris", input_example=features.head(3), **FAST_SAVE)
            for who, register in ((alice, True), (bob, False)):
                deployments = Deployments(who)
                deployment = deployments.deploy("iris:1", "local", register=register)
                try:
                    assert deployment.status == "running", deployment.error
                    assert deployment.model_uri == "models:/iris/1"
                    answer = _answer(deployment.url, features)
                    assert answer == iris_model.predict(features).tolist()
                finally:
                    deployments.undeploy(deployment.id)
        finally:
            alice.close()
            bob.close()
    logged = team.s3.list_objects_v2(Bucket=team.bucket, Prefix="mlflow/")["Contents"]
    assert any(item["Key"].endswith("/model/MLmodel") for item in logged)
    assert not any((tmp_path / who / "mlartifacts").exists() for who in ("alice", "bob"))


def test_a_save_killed_between_upload_and_commit_leaves_no_version_and_gc_deletes_its_objects(
    team: Team, alice: ModelRepository, bob: ModelRepository, iris_model, tmp_path: Path
) -> None:
    kept = alice.save(iris_model, "late", **FAST_SAVE)
    marker, go = tmp_path / "uploaded", tmp_path / "go"
    worker = subprocess.Popen(
        [sys.executable, WORKER, "save", "late", "1", str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "SPARKSERVE_HOME": str(tmp_path / "carol"),  # a third user, killed mid-save
            "SPARKSERVE_WORKER_STALL_AFTER_PROMOTE": str(marker),
        },
    )
    assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    go.touch()
    _kill_when(worker, marker)

    orphan = marker.read_text()
    assert orphan.startswith("late/v2-")
    orphan_keys = team.objects(orphan + "/")
    assert f"team-models/{orphan}/MLmodel" in orphan_keys, "the kill came before the upload"
    # Uploaded, never committed: nobody lists it, and the number is handed out again.
    assert [v.version for v in bob.get_model("late").versions] == [1]
    with pytest.raises(NotFound, match="has no version 2"):
        bob.resolve("late:2")

    removed = bob.collect_garbage(min_age_seconds=0)
    assert f"s3://{team.bucket}/team-models/{orphan}/" in removed
    assert team.objects(orphan + "/") == []
    assert team.objects(alice.artifacts.relative_of(kept.path) + "/")  # the committed one stays
    assert bob.collect_garbage(min_age_seconds=0) == []
    again = bob.save(iris_model, "late", **FAST_SAVE)
    assert again.version == 2 and bob.artifacts.relative_of(again.path) != orphan
    assert (alice.resolve("late:2").local_path() / "MLmodel").is_file()


def test_gc_refuses_a_bucket_another_repository_owns(
    team: Team, alice: ModelRepository, tmp_path: Path
) -> None:
    """Another database on the same bucket and prefix would see Alice's versions as orphans."""
    stranger = ModelRepository(
        Settings.from_env(home=tmp_path / "stranger", database_url=f"sqlite:///{tmp_path}/x.db")
    )
    try:
        with pytest.raises(Conflict, match="also holds models of another repository"):
            stranger.collect_garbage(min_age_seconds=0)
    finally:
        stranger.close()


def test_a_missing_bucket_or_an_unreachable_endpoint_says_what_to_fix(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = team.settings(tmp_path / "dana")
    missing = Settings(**{**settings.__dict__, "artifact_root": "s3://no-such-bucket-here/x"})
    with pytest.raises(InvalidInput, match="bucket no-such-bucket-here does not exist at http"):
        ModelRepository(missing)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(
        InvalidInput, match=r"Cannot reach the bucket .* AWS_ENDPOINT_URL_S3"
    ) as err:
        ModelRepository(settings)
    assert SECRET_KEY not in str(err.value)
    with pytest.raises(InvalidInput, match="folder or an s3://BUCKET/PREFIX"):
        Settings.from_env({"SPARKSERVE_ARTIFACT_ROOT": "gs://bucket/models"})
    # Without boto3 (an extra), what to install.
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.delitem(sys.modules, "jupyter_sparkserve.repository.s3_artifacts")
    with pytest.raises(InvalidInput, match=r"pip install 'jupyter_sparkserve\[s3\]'"):
        ModelRepository(team.settings(tmp_path / "erin"))


def test_a_registration_counts_only_in_the_registry_it_was_made_in(
    alice: ModelRepository, bob: ModelRepository, iris, iris_model
) -> None:
    """Each user has their own MLflow store here, where `models:/iris/1` names different
    models: Bob's deploy of Alice's registered version must register it in his own store and
    serve her model, not whatever his store calls iris version 1."""
    from sklearn.tree import DecisionTreeClassifier

    from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
    from jupyter_sparkserve.lifecycle import version_states

    features, target = iris
    tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, target)
    assert (tree.predict(features) != iris_model.predict(features)).any()
    alice.save(iris_model, "iris", **FAST_SAVE)
    bob.save(tree, "iris", **FAST_SAVE)
    assert MlflowRegistry(bob).register("iris:2").mlflow_version == 1  # his store's iris 1
    assert MlflowRegistry(alice).register("iris:1").mlflow_version == 1  # hers

    assert [s.registered for s in version_states(bob, [("iris", 1), ("iris", 2)])] == [
        False,
        True,
    ]
    with pytest.raises(Conflict, match="not registered in MLflow"):
        Deployments(bob).deploy("iris:1", "local")
    deployment = Deployments(bob).deploy("iris:1", "local", register=True)
    try:
        assert deployment.status == "running", deployment.error
        assert deployment.model_uri == "models:/iris/2"  # registered again, in Bob's store
        assert _answer(deployment.url, features) == iris_model.predict(features).tolist()
    finally:
        Deployments(bob).undeploy(deployment.id)
    assert [r.mlflow_version for r in MlflowRegistry(alice).registrations("iris:1")] == [1]
