from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from conftest import FAST_SAVE
from sklearn.linear_model import LogisticRegression

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.errors import (
    Conflict,
    InvalidInput,
    InvalidName,
    NotAnMLflowModel,
    NotFound,
    UnsupportedModel,
)
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository import database as db
from jupyter_sparkserve.repository.mlflow_uris import mlflow_store

# Every test here runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("any_database")


class RowSum(mlflow.pyfunc.PythonModel):
    """A custom pyfunc model: the sum of each row, times a factor."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        return model_input.sum(axis=1) * self.factor


def test_save_scikit_learn_with_metadata(repo: ModelRepository, iris, iris_model) -> None:
    features, _ = iris
    # The default path: MLflow infers the pip requirements itself.
    version = repo.save(
        iris_model,
        "iris",
        description="first try",
        tags={"team": "risk", "stage": "dev"},
        metrics={"accuracy": 0.97},
        input_example=features.head(3),
    )
    assert version.ref == "iris:1"
    assert version.flavor == "sklearn"
    assert "python_function" in version.flavors
    assert version.description == "first try"
    assert dict(version.tags) == {"team": "risk", "stage": "dev"}
    assert dict(version.metrics) == {"accuracy": 0.97}
    assert version.has_input_example
    assert [column["name"] for column in version.signature["inputs"]] == list(features.columns)
    assert version.size_bytes > 0
    assert (version.path / "MLmodel").is_file()
    assert "scikit-learn" in (version.path / "requirements.txt").read_text()
    assert version.path.is_relative_to(repo.settings.artifact_root)

    loaded = repo.load_pyfunc("iris")
    np.testing.assert_array_equal(loaded.predict(features), iris_model.predict(features))


def test_save_custom_pyfunc_model(repo: ModelRepository, iris) -> None:
    features, _ = iris
    version = repo.save(RowSum(2.0), "row-sum", input_example=features.head(2), **FAST_SAVE)
    assert version.flavor == "python_function"
    assert version.signature is not None
    predictions = repo.load_pyfunc("row-sum:1").predict(features.head(5))
    np.testing.assert_allclose(predictions, features.head(5).sum(axis=1) * 2.0)


def test_any_installed_flavor_is_found_from_the_model_class(repo: ModelRepository, iris) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, target = iris
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, target)
    version = repo.save(model, "gbm", input_example=features.head(2), pip_requirements=["lightgbm"])
    assert version.flavor == "lightgbm"
    np.testing.assert_array_equal(
        repo.load_pyfunc("gbm").predict(features), model.predict(features)
    )


class MyClassifier(LogisticRegression):
    """A user's own subclass of a library model."""


def test_subclass_of_a_library_model_uses_the_library_flavor(repo: ModelRepository, iris) -> None:
    features, target = iris
    model = MyClassifier(max_iter=300).fit(features, target)
    version = repo.save(model, "mine", **FAST_SAVE)
    assert version.flavor == "sklearn"
    assert version.signature is None and not version.has_input_example
    np.testing.assert_array_equal(
        repo.load_pyfunc("mine").predict(features), model.predict(features)
    )


def test_tree_models_save_and_load_with_their_own_types_trusted(repo, iris) -> None:
    """MLflow's skops format refuses scikit-learn's own tree storage unless it is trusted."""
    from mlflow.models import Model
    from sklearn.ensemble import RandomForestClassifier

    features, target = iris
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, target)
    version = repo.save(forest, "forest", **FAST_SAVE)
    conf = Model.load(str(version.path)).flavors["sklearn"]
    assert conf["serialization_format"] == "skops"
    assert "sklearn.tree._tree.Tree" in conf["skops_trusted_types"]
    np.testing.assert_array_equal(
        repo.load_pyfunc("forest").predict(features), forest.predict(features)
    )
    pickled = repo.save(
        forest, "forest", flavor_options={"serialization_format": "cloudpickle"}, **FAST_SAVE
    )
    assert Model.load(str(pickled.path)).flavors["sklearn"]["serialization_format"] == (
        "cloudpickle"
    )
    # Told to trust nothing, MLflow refuses; the user gets its reason and what to pass.
    with pytest.raises(UnsupportedModel, match=r"(?s)sklearn.tree._tree.Tree.*flavor_options"):
        repo.save(forest, "forest", flavor_options={"skops_trusted_types": []}, **FAST_SAVE)
    assert repo.get_model("forest").latest.version == 2


def test_unknown_objects_are_refused_clearly(repo: ModelRepository) -> None:
    class Lookup:
        pass

    with pytest.raises(UnsupportedModel, match="flavor="):
        repo.save(Lookup(), "lookup")
    with pytest.raises(UnsupportedModel, match="no flavor 'nosuchflavor'"):
        repo.save(Lookup(), "lookup", flavor="nosuchflavor")
    assert repo.stats()["models"] == 0
    assert not any(repo.settings.artifact_root.glob(".staging/*"))


def test_bad_names_lose_nothing(repo: ModelRepository, mlflow_model_dir: Path) -> None:
    with pytest.raises(InvalidName):
        repo.import_model(mlflow_model_dir, "../escape")
    with pytest.raises(InvalidInput):
        repo.import_model(mlflow_model_dir, "ok", tags={"k": object()})
    assert repo.stats()["versions"] == 0


def test_versions_count_up_and_are_never_reused(
    repo: ModelRepository, mlflow_model_dir: Path
) -> None:
    first = repo.import_model(mlflow_model_dir, "iris")
    second = repo.import_model(mlflow_model_dir, "iris")
    assert (first.version, second.version) == (1, 2)
    assert first.path != second.path
    repo.delete_version("iris:2")
    assert not second.path.exists()
    third = repo.import_model(mlflow_model_dir, "iris")
    assert third.version == 3
    with pytest.raises(NotFound, match=r"no version 2 \(versions: 1, 3\)"):
        repo.resolve("iris:2")


def test_resolve_latest_version_and_alias(repo: ModelRepository, mlflow_model_dir: Path) -> None:
    for _ in range(3):
        repo.import_model(mlflow_model_dir, "iris")
    assert repo.resolve("iris").version == 3
    assert repo.resolve("iris@latest").version == 3
    repo.set_alias("iris:1", "champion")
    repo.set_alias("iris:2", "challenger")
    assert repo.resolve("iris@champion").version == 1
    assert repo.resolve("iris:1").aliases == ("champion",)
    repo.set_alias("iris@challenger", "champion")  # moving an alias
    assert repo.resolve("iris@champion").version == 2
    assert repo.resolve("iris:1").aliases == ()
    assert dict(repo.get_model("iris").aliases) == {"challenger": 2, "champion": 2}
    with pytest.raises(NotFound, match=r"no alias 'prod' \(aliases: challenger -> 2"):
        repo.resolve("iris@prod")
    repo.remove_alias("iris", "challenger")
    with pytest.raises(NotFound, match="no alias 'challenger'"):
        repo.remove_alias("iris", "challenger")
    repo.delete_version("iris:2")  # its aliases go with it
    assert dict(repo.get_model("iris").aliases) == {}
    with pytest.raises(NotFound, match="no alias 'champion'"):
        repo.resolve("iris@champion")


def test_unknown_model_suggests_close_names(repo: ModelRepository, mlflow_model_dir) -> None:
    with pytest.raises(NotFound, match="repository is empty"):
        repo.resolve("iris")
    repo.import_model(mlflow_model_dir, "iris-classifier")
    with pytest.raises(NotFound, match="Did you mean 'iris-classifier'"):
        repo.resolve("iris-clasifier")
    with pytest.raises(InvalidInput, match="import it first"):
        repo.resolve("runs:/abc/model")


def test_list_filters_and_pages(repo: ModelRepository, mlflow_model_dir: Path) -> None:
    names = ["alpha", "Beta", "churn_v1", "churnXv1", "delta", "epsilon", "gamma"]
    for name in names:
        repo.import_model(
            mlflow_model_dir, name, tags={"team": "risk" if "churn" in name else "ops"}
        )
    repo.import_model(mlflow_model_dir, "delta", description="second", tags={"stage": "prod"})
    repo.set_alias("delta:1", "champion")

    page = repo.list_models(limit=3)
    assert [m.name for m in page.items] == ["alpha", "Beta", "churn_v1"]
    assert (page.total, page.next_offset) == (7, 3)
    last = repo.list_models(limit=3, offset=6)
    assert [m.name for m in last.items] == ["gamma"] and last.next_offset is None

    delta = repo.list_models(name_contains="DEL").items
    assert len(delta) == 1
    assert (delta[0].latest_version, delta[0].version_count) == (2, 2)
    assert delta[0].description == "second"
    assert dict(delta[0].aliases) == {"champion": 1}
    assert delta[0].flavor == "sklearn"
    # '_' is a literal here, not SQL's single-character wildcard.
    assert [m.name for m in repo.list_models(name_contains="churn_").items] == ["churn_v1"]
    assert [m.name for m in repo.list_models(tag="team=risk").items] == ["churn_v1", "churnXv1"]
    assert [m.name for m in repo.list_models(tag="stage").items] == ["delta"]
    assert repo.list_models(tag="team=nobody").total == 0
    with pytest.raises(InvalidInput, match="limit"):
        repo.list_models(limit=0)
    with pytest.raises(InvalidInput, match="offset"):
        repo.list_models(offset=-1)


def test_get_model_lists_versions_newest_first(repo, mlflow_model_dir) -> None:
    repo.import_model(mlflow_model_dir, "iris", description="one")
    repo.import_model(mlflow_model_dir, "iris", description="two")
    details = repo.get_model("iris")
    assert [v.version for v in details.versions] == [2, 1]
    assert details.latest.description == "two"
    assert details.to_dict()["latest_version"] == 2


def test_delete_model_removes_every_version(repo, mlflow_model_dir) -> None:
    paths = [repo.import_model(mlflow_model_dir, "iris").path for _ in range(2)]
    repo.set_alias("iris:1", "champion")
    deleted = repo.delete_model("iris")
    assert [v.version for v in deleted.versions] == [2, 1]
    assert not any(path.exists() for path in paths)
    assert not (repo.settings.artifact_root / "iris").exists()
    assert repo.stats() == {"models": 0, "versions": 0, "schema_version": db.SCHEMA_VERSION}
    # The name can be used again; numbers go on: a notebook pinned to iris:1 never loads
    # another model, and a second delete finds nothing left to delete.
    assert repo.import_model(mlflow_model_dir, "iris").version == 3
    repo.delete_model("iris")
    with pytest.raises(NotFound, match="no versions"):
        repo.delete_model("iris")
    # Another letter case takes the name over, numbering included.
    assert repo.import_model(mlflow_model_dir, "IRIS").version == 4
    assert [m.name for m in repo.list_models().items] == ["IRIS"]


def test_deleting_the_last_version_deletes_the_model(repo, mlflow_model_dir) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    repo.delete_version("iris")
    assert repo.list_models().total == 0


def test_import_a_folder_copies_it(repo: ModelRepository, mlflow_model_dir: Path, iris) -> None:
    version = repo.import_model(mlflow_model_dir, "iris", description="imported")
    assert version.source == str(mlflow_model_dir)
    assert version.path != mlflow_model_dir and (version.path / "MLmodel").is_file()
    assert version.has_input_example and version.signature is not None
    assert (mlflow_model_dir / "MLmodel").is_file()  # the original is left alone
    copy = repo.import_model("iris:1", "iris-copy")
    assert copy.source == "iris:1"
    np.testing.assert_array_equal(
        repo.load_pyfunc("iris-copy").predict(iris[0]), repo.load_pyfunc("iris").predict(iris[0])
    )


def test_import_refuses_what_is_not_a_model(repo: ModelRepository, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(NotAnMLflowModel, match="no MLmodel file"):
        repo.import_model(tmp_path / "notes", "notes")
    with pytest.raises(NotFound, match="No such file or folder"):
        repo.import_model(tmp_path / "missing", "missing")
    assert repo.stats()["versions"] == 0


def test_import_from_mlflow_runs_and_registry(
    repo: ModelRepository, iris, iris_model, tmp_path: Path
) -> None:
    import mlflow
    import mlflow.sklearn

    features, _ = iris
    tracking_uri = repo.settings.mlflow_tracking_uri
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(
        "import-test", artifact_location=(tmp_path / "mlruns").as_uri()
    )
    with mlflow_store(tracking_uri), mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.sklearn.log_model(
            iris_model,
            name="model",
            input_example=features.head(2),
            registered_model_name="iris-registered",
            **FAST_SAVE,
        )

    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    from_run = repo.import_model(f"runs:/{run.info.run_id}/model", "from-run")
    from_registry = repo.import_model("models:/iris-registered/1", "from-registry")
    # The user's own MLflow settings in this process are left as they were.
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before
    assert from_run.source.startswith("runs:/")
    for version in (from_run, from_registry):
        assert version.flavor == "sklearn"
        np.testing.assert_array_equal(
            repo.load_pyfunc(version.ref).predict(features), iris_model.predict(features)
        )
    with pytest.raises(NotFound, match="Could not fetch models:/nope/1"):
        repo.import_model("models:/nope/1", "nope")
    assert repo.stats()["models"] == 2


def test_model_path_accepts_outside_references(repo, mlflow_model_dir: Path) -> None:
    assert repo.model_path(str(mlflow_model_dir)) == mlflow_model_dir
    assert repo.load_pyfunc(str(mlflow_model_dir)) is not None


def _age(folder: Path, seconds: float) -> None:
    """Make every file and folder in the tree look untouched for `seconds`."""
    then = time.time() - seconds
    for directory, _subdirs, files in os.walk(folder):
        for name in (directory, *(os.path.join(directory, f) for f in files)):
            os.utime(name, (then, then))


def test_collect_garbage_removes_only_unreferenced_folders(repo, mlflow_model_dir) -> None:
    kept = repo.import_model(mlflow_model_dir, "iris")
    orphan = repo.settings.artifact_root / "iris" / "v9-deadbeef0000"
    shutil.copytree(mlflow_model_dir, orphan)
    staging = repo.settings.artifact_root / ".staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    stranger = repo.settings.artifact_root / "iris" / "notes"  # not a folder this store makes
    stranger.mkdir()
    for folder in (kept.path, orphan, staging, stranger):
        _age(folder, 10)
    assert repo.collect_garbage() == []  # too young: could be a save in progress
    removed = repo.collect_garbage(min_age_seconds=5)
    assert set(removed) == {orphan, staging}
    assert kept.path.exists() and stranger.exists()
    assert not orphan.exists() and not staging.exists()


def test_collect_garbage_keeps_old_folders_that_are_referenced(repo, tmp_path, mlflow_model_dir):
    """An import copies a folder with its old timestamps: age alone must never decide."""
    old_source = tmp_path / "old-model"
    shutil.copytree(mlflow_model_dir, old_source)
    _age(old_source, 30 * 24 * 3600)
    version = repo.import_model(old_source, "iris")
    assert repo.collect_garbage(min_age_seconds=0) == []
    assert repo.resolve("iris:1").path == version.path and version.path.is_dir()


def test_collect_garbage_refuses_a_root_shared_with_another_repository(
    home, tmp_path, mlflow_model_dir, monkeypatch
) -> None:
    """A teammate who forgot SPARKSERVE_DATABASE_URL must not delete the team's models."""
    shared = tmp_path / "shared-artifacts"
    monkeypatch.setenv("SPARKSERVE_ARTIFACT_ROOT", str(shared))
    team = ModelRepository(Settings.from_env(database_url=f"sqlite:///{tmp_path / 'team.db'}"))
    churn = team.import_model(mlflow_model_dir, "churn")
    _age(churn.path, 7200)
    mine = ModelRepository(Settings.from_env(database_url=f"sqlite:///{tmp_path / 'mine.db'}"))
    with pytest.raises(Conflict, match="another repository"):
        mine.collect_garbage(min_age_seconds=0)
    assert churn.path.is_dir()
    assert team.collect_garbage(min_age_seconds=0) == []


def test_opening_sweeps_dead_staging_but_keeps_old_versions(repo, mlflow_model_dir) -> None:
    """Versions live for years; only a staging folder that old is a dead save's leftover."""
    old = repo.import_model(mlflow_model_dir, "iris")
    dead_save = repo.settings.artifact_root / ".staging" / uuid.uuid4().hex
    (dead_save / "model").mkdir(parents=True)
    for folder in (old.path, dead_save):
        _age(folder, 3 * 24 * 3600)
    repo.close()
    reopened = ModelRepository(Settings.from_env())
    assert not dead_save.exists()
    assert reopened.resolve("iris:1").path.is_dir()
    assert reopened.collect_garbage() == []  # referenced, however old
    assert old.path.is_dir()


def test_names_are_unique_whatever_their_case(repo, mlflow_model_dir) -> None:
    repo.import_model(mlflow_model_dir, "Iris")
    with pytest.raises(Conflict, match="names differ by more than letter case"):
        repo.import_model(mlflow_model_dir, "iris")
    assert repo.import_model(mlflow_model_dir, "Iris").version == 2
    with pytest.raises(NotFound, match="Did you mean 'Iris'"):
        repo.resolve("iris")


def test_deleting_every_version_keeps_the_numbering(repo, mlflow_model_dir) -> None:
    """A notebook pinned to churn:1 must never load another model called churn:1."""
    repo.import_model(mlflow_model_dir, "churn")
    repo.delete_version("churn:1")
    assert repo.list_models().total == 0
    assert repo.stats()["models"] == 0
    with pytest.raises(NotFound, match="no versions"):
        repo.resolve("churn")
    with pytest.raises(NotFound, match="no versions"):
        repo.get_model("churn")
    assert repo.import_model(mlflow_model_dir, "churn").version == 2
    with pytest.raises(NotFound):
        repo.resolve("churn:1")


def test_deleting_a_version_that_is_already_gone_says_so(repo, mlflow_model_dir) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    repo.import_model(mlflow_model_dir, "iris")
    stale = repo.resolve("iris:1")
    other = ModelRepository(Settings.from_env())
    other.delete_version("iris:1")
    with pytest.raises(NotFound):
        repo.delete_version(f"{stale.name}:{stale.version}")
    assert repo.resolve("iris").version == 2


def test_metrics_must_be_finite(repo, mlflow_model_dir) -> None:
    with pytest.raises(InvalidInput, match="finite numbers"):
        repo.import_model(mlflow_model_dir, "iris", metrics={"rmse": float("nan")})
    with pytest.raises(InvalidInput, match="finite numbers"):
        repo.import_model(mlflow_model_dir, "iris", metrics={"rmse": float("inf")})
    assert repo.stats()["versions"] == 0


def test_a_path_object_is_a_folder_and_a_bare_folder_name_gets_a_hint(
    repo, mlflow_model_dir, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(mlflow_model_dir, tmp_path / "iris_model")
    assert repo.import_model(Path("iris_model"), "iris").version == 1
    with pytest.raises(NotFound, match=r"write \./iris_model"):
        repo.import_model("iris_model", "iris")
