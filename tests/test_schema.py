from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import FAST_SAVE
from sqlalchemy import inspect, text

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.errors import InvalidInput, RepositoryTooNew
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository import database as db

V1_DUMP = Path(__file__).with_name("data") / "repository-v1.sql"


def _schema_version(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (value,) = connection.execute(
            "SELECT value FROM sparkserve_schema WHERE key = 'schema_version'"
        ).fetchone()
    return int(value)


def test_new_repository_is_stamped_and_in_wal_mode(repo: ModelRepository, home: Path) -> None:
    database = home / "repository.db"
    assert database.is_file()
    assert _schema_version(database) == db.SCHEMA_VERSION
    assert repo.schema_version_found == 0
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Opening it again changes nothing and finds the version it stamped.
    assert ModelRepository(Settings.from_env()).schema_version_found == db.SCHEMA_VERSION


def test_a_newer_repository_is_refused_and_left_alone(
    repo: ModelRepository, home: Path, mlflow_model_dir: Path
) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    repo.close()
    database = home / "repository.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE sparkserve_schema SET value = ? WHERE key = 'schema_version'",
            (str(db.SCHEMA_VERSION + 1),),
        )
    with pytest.raises(RepositoryTooNew) as caught:
        ModelRepository(Settings.from_env())
    assert "newer jupyter_sparkserve" in caught.value.message
    assert "pip install -U jupyter_sparkserve" in caught.value.message
    assert _schema_version(database) == db.SCHEMA_VERSION + 1
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM model_versions").fetchone()[0] == 1


def test_an_older_repository_is_migrated_with_nothing_lost(
    repo: ModelRepository, home: Path, mlflow_model_dir: Path
) -> None:
    """The upgrade path a future release takes: the steps run in order, in one transaction,
    and the rows written by the older release are all still there."""
    saved = repo.import_model(mlflow_model_dir, "iris", tags={"team": "risk"})
    repo.set_alias("iris:1", "champion")
    repo.close()
    applied: list[int] = []

    def add_owner_column(connection) -> None:
        applied.append(db.SCHEMA_VERSION + 1)
        connection.execute(text("ALTER TABLE models ADD COLUMN owner VARCHAR(64)"))

    def fill_owner(connection) -> None:
        applied.append(db.SCHEMA_VERSION + 2)
        connection.execute(text("UPDATE models SET owner = 'unknown'"))

    engine = db.create_repository_engine(Settings.from_env().database_url)
    found = db.ensure_schema(
        engine,
        target=db.SCHEMA_VERSION + 2,
        migrations={db.SCHEMA_VERSION + 1: add_owner_column, db.SCHEMA_VERSION + 2: fill_owner},
    )
    assert found == db.SCHEMA_VERSION
    assert applied == [db.SCHEMA_VERSION + 1, db.SCHEMA_VERSION + 2]
    with engine.connect() as connection:
        assert "owner" in {c["name"] for c in inspect(connection).get_columns("models")}
        assert connection.execute(text("SELECT owner FROM models")).scalar_one() == "unknown"
        assert db.read_schema_version(connection) == db.SCHEMA_VERSION + 2
    engine.dispose()
    # The rows the older release wrote are intact and readable.
    with sqlite3.connect(home / "repository.db") as connection:
        connection.execute(
            "UPDATE sparkserve_schema SET value = ? WHERE key = 'schema_version'",
            (str(db.SCHEMA_VERSION),),
        )
    reopened = ModelRepository(Settings.from_env())
    version = reopened.resolve("iris@champion")
    assert (version.ref, dict(version.tags), version.path) == (
        "iris:1",
        {"team": "risk"},
        saved.path,
    )


def test_a_failing_migration_changes_nothing(repo: ModelRepository, home: Path) -> None:
    repo.close()

    def broken(connection) -> None:
        connection.execute(text("ALTER TABLE models ADD COLUMN half_done INTEGER"))
        raise RuntimeError("disk on fire")

    engine = db.create_repository_engine(Settings.from_env().database_url)
    with pytest.raises(RuntimeError):
        db.ensure_schema(
            engine, target=db.SCHEMA_VERSION + 1, migrations={db.SCHEMA_VERSION + 1: broken}
        )
    with engine.connect() as connection:
        assert db.read_schema_version(connection) == db.SCHEMA_VERSION
        assert "half_done" not in {c["name"] for c in inspect(connection).get_columns("models")}
    engine.dispose()


def test_foreign_tables_are_not_taken_over(home: Path) -> None:
    home.mkdir(parents=True)
    with sqlite3.connect(home / "repository.db") as connection:
        connection.execute("CREATE TABLE models (id INTEGER PRIMARY KEY, other TEXT)")
    with pytest.raises(RepositoryTooNew, match="not written by jupyter_sparkserve"):
        ModelRepository(Settings.from_env())


def test_database_url_and_artifact_root_are_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_model_dir: Path
) -> None:
    database = tmp_path / "team" / "shared.db"
    artifacts = tmp_path / "team" / "artifacts"
    monkeypatch.setenv("SPARKSERVE_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("SPARKSERVE_ARTIFACT_ROOT", str(artifacts))
    repository = ModelRepository(Settings.from_env())
    version = repository.import_model(mlflow_model_dir, "iris")
    assert database.is_file()
    assert version.path.is_relative_to(artifacts)
    assert not (Settings.from_env().home / "repository.db").exists()


def test_an_unreadable_database_url_says_what_to_write() -> None:
    with pytest.raises(InvalidInput, match="SQLAlchemy URL"):
        ModelRepository(Settings.from_env(database_url="not a url"))


def test_settings_defaults_live_under_the_home(home: Path) -> None:
    settings = Settings.from_env()
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home / 'repository.db'}"
    assert settings.artifact_root == home / "artifacts"
    assert settings.mlflow_tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    default = Settings.from_env({})
    assert default.home == Path("~/.sparkserve").expanduser()


def test_a_repository_from_before_repository_ids_gets_one(
    repo: ModelRepository, home: Path, mlflow_model_dir: Path
) -> None:
    repo.import_model(mlflow_model_dir, "iris")
    first_id = repo.repository_id
    repo.close()
    with sqlite3.connect(home / "repository.db") as connection:
        connection.execute("DELETE FROM sparkserve_schema WHERE key = 'repository_id'")
    (home / "artifacts" / ".sparkserve-repository").unlink()
    reopened = ModelRepository(Settings.from_env())
    assert reopened.repository_id != first_id
    assert reopened.resolve("iris:1").path.is_dir()
    assert ModelRepository(Settings.from_env()).repository_id == reopened.repository_id


def test_a_repository_written_at_schema_version_1_opens_with_everything_intact(
    home: Path, iris, iris_model
) -> None:
    """A real database from the first release (commit 6c1381c, see the dump's header): it is
    migrated on open, keeps every row, and the features whose tables came later work on it."""
    import mlflow.sklearn

    home.mkdir(parents=True)
    database = home / "repository.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(V1_DUMP.read_text())
        folders = connection.execute(
            "SELECT version, artifact_dir FROM model_versions ORDER BY version"
        ).fetchall()
    assert [version for version, _ in folders] == [1, 2]
    # The dump keeps no artifacts: put a model folder where each row says its version lives.
    for _version, relative in folders:
        mlflow.sklearn.save_model(iris_model, str(home / "artifacts" / relative), **FAST_SAVE)

    repository = ModelRepository(Settings.from_env())
    try:
        assert repository.schema_version_found == 1
        assert _schema_version(database) == db.SCHEMA_VERSION
        with sqlite3.connect(database) as connection:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            tables = {name for (name,) in connection.execute(query)}
            query = "SELECT name FROM sqlite_master WHERE type = 'index'"
            indexes = {name for (name,) in connection.execute(query)}
        assert {"mlflow_registrations", "deployments", "workflows", "jobs"} <= tables
        assert "uq_models_name_folded" in indexes  # the first release had no such index

        details = repository.get_model("iris")
        assert details.aliases == {"champion": 1}
        second, first = details.versions
        assert (first.version, first.description, dict(first.tags), dict(first.metrics)) == (
            1, "first cut", {"team": "risk", "stage": "dev"}, {"accuracy": 0.96},
        )  # fmt: skip
        assert (second.version, second.description, dict(second.tags), dict(second.metrics)) == (
            2, "retrained", {"team": "risk"}, {"accuracy": 0.97, "f1": 0.965},
        )  # fmt: skip
        assert first.flavors == ("sklearn", "python_function") and first.has_input_example
        assert [c["name"] for c in first.signature["inputs"]] == list(iris[0].columns)
        assert first.aliases == ("champion",) and second.aliases == ()
        assert repository.list_models(tag="stage=dev").total == 1

        champion = repository.resolve("iris@champion")
        assert champion.ref == "iris:1" and champion.path == home / "artifacts" / folders[0][1]
        features = iris[0].head(10)
        predictions = repository.load_pyfunc("iris@champion").predict(features)
        assert list(predictions) == list(iris_model.predict(features))

        # Register writes mlflow_registrations, a table schema 1 did not have.
        registration = MlflowRegistry(repository).register("iris@champion")
        assert registration.model_uri == "models:/iris/1"
        assert [r.mlflow_version for r in MlflowRegistry(repository).registrations("iris:1")] == [1]
        # Numbering carries on from the old rows.
        assert repository.import_model(first.path, "iris").version == 3
    finally:
        repository.close()
