"""The Spark engine (real Spark, local[*]) against the local engine, on the same inputs.

One Spark session serves the whole test session: it takes about 15 s to start.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from _files import read_any, write_parts
from conftest import FAST_SAVE, require_component

from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring import batch
from jupyter_sparkserve.scoring import spark as spark_engine
from jupyter_sparkserve.scoring.batch import readers, writers
from jupyter_sparkserve.scoring.offline import score

pytestmark = pytest.mark.slow

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
FORMATS = ["csv", "parquet", "jsonl"]

# Spark's Python workers cannot import this test module: pickle its models by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class NamedOutputs(mlflow.pyfunc.PythonModel):
    """A model with several named outputs of different types (a DataFrame)."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        petal = model_input["petal length (cm)"]
        return pd.DataFrame(
            {"score": petal * 0.5, "big": petal > 4.0, "size": np.where(petal > 4.0, "L", "S")}
        )


class Slow(mlflow.pyfunc.PythonModel):
    """Quick on the few rows the driver samples, then too slow to ever finish."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        if len(model_input) > spark_engine.PROBE_ROWS:
            time.sleep(600)
        return np.zeros(len(model_input))


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    require_component(
        "Spark",
        spark_engine.spark_available(),
        "pip install 'jupyter_sparkserve[spark]' and a Java 17 runtime (.ci/run installs both)",
    )
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[*]")
        .appName("sparkserve-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, iris) -> dict[str, Path]:
    """MLflow model folders: a classifier (one integer output), a regressor with two outputs
    (a 2-D array), a model returning named columns, and one that never finishes."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    features, target = iris
    root = tmp_path_factory.mktemp("spark-models")
    example = features.head(3)
    classifier = LogisticRegression(max_iter=500).fit(features, target)
    mlflow.sklearn.save_model(
        classifier, str(root / "classifier"), input_example=example, **FAST_SAVE
    )
    two_targets = np.c_[features.iloc[:, 0] * 2, features.iloc[:, 1] - 1]
    regressor = LinearRegression().fit(features, two_targets)
    mlflow.sklearn.save_model(
        regressor, str(root / "two-outputs"), input_example=example, **FAST_SAVE
    )
    named = NamedOutputs()
    mlflow.pyfunc.save_model(
        str(root / "named-outputs"),
        python_model=named,
        input_example=example,
        pip_requirements=["pandas"],
    )
    mlflow.pyfunc.save_model(str(root / "slow"), python_model=Slow(), pip_requirements=["pandas"])
    return {path.name: path for path in root.iterdir()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, iris) -> dict[str, Path]:
    """For each format, a folder of three files: 3,000 shuffled rows with an id column, the
    features (names with spaces and brackets) and a text column."""
    features, _ = iris
    rows = pd.concat([features] * 20, ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=5).reset_index(drop=True)
    rows.insert(0, "id", np.arange(len(rows)))
    rows["note"] = np.where(rows.index % 3 == 0, 'a, "quoted" note', "plain")
    root = tmp_path_factory.mktemp("spark-inputs")
    return {fmt: write_parts(rows, root / fmt, fmt) for fmt in FORMATS}


def both_engines(
    model: Path, source: Path, tmp_path: Path, output_name: str, repo: ModelRepository, **options
) -> tuple[pd.DataFrame, pd.DataFrame, batch.BatchResult]:
    local_output, spark_output = tmp_path / "local" / output_name, tmp_path / "spark" / output_name
    local_output.parent.mkdir()
    spark_output.parent.mkdir()
    local = score(str(model), source, local_output, repository=repo, **options)
    result = score(str(model), source, spark_output, engine="spark", repository=repo, **options)
    assert result.prediction_columns == local.prediction_columns
    assert result.rows == local.rows
    assert sorted(os.listdir(tmp_path / "spark")) == [output_name]  # nothing left behind
    return read_any(local_output), read_any(spark_output), result


@pytest.mark.parametrize("fmt", FORMATS)
def test_spark_writes_what_the_local_engine_writes(
    spark, tmp_path: Path, repo, models, inputs, fmt
) -> None:
    events: list[batch.BatchProgress] = []
    local, on_spark, result = both_engines(
        models["classifier"], inputs[fmt], tmp_path, f"scored.{fmt}", repo, progress=events.append
    )
    assert list(on_spark.columns) == ["id", *FEATURES, "note", "prediction"]
    assert result.rows == len(on_spark) == 3000
    # One output file keeps the input order, as the local engine does.
    pd.testing.assert_frame_equal(on_spark, local)
    assert on_spark["prediction"].nunique() == 3
    last = events[-1]  # the one report at 100%, once the output is in place
    assert (last.rows_done, last.rows_total, last.files_done) == (3000, 3000, 3)
    assert last.complete and last.fraction == 1.0 and last.bytes_done == last.bytes_total
    # The local engine's run came first; Spark counts no rows while it runs.
    spark_run = events[[e.complete for e in events].index(True) + 1 : -1]
    assert all(e.fraction is None and not e.rows_done for e in spark_run)


@pytest.mark.parametrize("model", ["two-outputs", "named-outputs"])
def test_several_outputs_get_the_same_columns(spark, tmp_path: Path, repo, models, inputs, model):
    local, on_spark, result = both_engines(
        models[model], inputs["parquet"], tmp_path, "scored.csv", repo, keep_columns=["id"]
    )
    expected = (
        ["prediction_0", "prediction_1"] if model == "two-outputs" else ["score", "big", "size"]
    )
    assert result.prediction_columns == expected
    assert list(on_spark.columns) == ["id", *expected]
    pd.testing.assert_frame_equal(on_spark, local)


def test_a_folder_output_holds_part_files_with_every_row(
    spark, tmp_path: Path, repo, models, inputs
) -> None:
    local, on_spark, _ = both_engines(
        models["classifier"], inputs["csv"], tmp_path, "scored", repo, output_format="jsonl"
    )
    names = sorted(p.name for p in (tmp_path / "spark" / "scored").iterdir())
    assert names[0] == writers.FOLDER_MARKER  # a folder sparkserve wrote, replaceable next run
    parts = names[1:]
    assert parts and all(name.startswith("part-") and name.endswith(".jsonl") for name in parts)
    pd.testing.assert_frame_equal(
        on_spark.sort_values("id", ignore_index=True), local.sort_values("id", ignore_index=True)
    )


def test_spark_config_is_applied(
    spark, tmp_path: Path, repo, models, inputs, caplog: pytest.LogCaptureFixture
) -> None:
    before = spark.conf.get("spark.sql.shuffle.partitions")
    settings = {"spark.sql.shuffle.partitions": "7", "spark.sparkserve.test": "yes",
                "spark.master": "local[1]"}  # fmt: skip
    try:
        score(str(models["classifier"]), inputs["csv"], tmp_path / "out.csv", engine="spark",
              repository=repo, spark_config=settings)  # fmt: skip
        assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
        assert spark.conf.get("spark.sparkserve.test") == "yes"
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    # A master (like jars) cannot change under a running session: the user is told.
    assert "already running" in caplog.text
    assert spark.sparkContext.master == "local[*]"


def test_a_bad_input_path_is_named(spark, tmp_path: Path, repo, models) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        score(str(models["classifier"]), tmp_path / "nowhere", tmp_path / "out.csv",
              engine="spark", repository=repo)  # fmt: skip


def test_an_input_gone_after_planning_is_a_clear_error(spark, tmp_path: Path, models, inputs):
    source = tmp_path / "in"
    source.mkdir()
    for part in inputs["parquet"].iterdir():
        (source / part.name).write_bytes(part.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    plan = batch.plan_run(source, out / "scored.parquet")
    (source / "part-1.parquet").unlink()
    # Spark says either, depending on whether it lists the folder again before reading.
    gone = r"(Cannot read|Path does not exist).*part-1\.parquet"
    with pytest.raises(InvalidInput, match=gone) as error:
        spark_engine.score_files(models["classifier"], plan)
    assert "\tat " not in error.value.message  # no Java stack trace
    assert os.listdir(out) == []


def test_a_bad_value_beyond_what_planning_reads_fails_the_run(
    spark, tmp_path: Path, repo, models
) -> None:
    source, out = tmp_path / "big.csv", tmp_path / "out"
    out.mkdir()
    rows = pd.DataFrame(np.ones((100_000, 4)), columns=FEATURES)
    rows.to_csv(source, index=False)
    assert source.stat().st_size > readers.CSV_BLOCK_BYTES
    with open(source, "a") as handle:
        handle.write("1.0,oops,1.0,1.0\n")
    with pytest.raises(InvalidInput, match=r"big\.csv.*For input string: \"oops\""):
        score(str(models["classifier"]), source, out / "scored.csv", engine="spark",
              repository=repo)  # fmt: skip
    assert os.listdir(out) == []


def test_cancelling_stops_spark_and_leaves_no_output(
    spark, tmp_path: Path, repo, models, inputs
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cancel = threading.Event()
    timer = threading.Timer(5.0, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(batch.Cancelled):
        score(str(models["slow"]), inputs["parquet"], out / "scored.parquet", engine="spark",
              repository=repo, cancel=cancel)  # fmt: skip
    assert time.monotonic() - started < 60
    assert os.listdir(out) == []


@pytest.mark.timeout(180)
def test_a_failing_progress_callback_does_not_stop_cancelling(
    spark, tmp_path: Path, repo, models, inputs
) -> None:
    """The watcher thread reports progress and passes cancels on: a progress callback that
    raises (a failed database write) must not end it."""
    out = tmp_path / "out"
    out.mkdir()
    cancel = threading.Event()
    failures: list[float] = []

    def progress(event: batch.BatchProgress) -> None:
        if threading.current_thread().name == "sparkserve-spark-watch":
            failures.append(time.monotonic())
            cancel.set()  # cancelled once the callback has failed
            raise RuntimeError("database is locked")

    started = time.monotonic()
    with pytest.raises(batch.Cancelled):
        score(str(models["slow"]), inputs["parquet"], out / "scored.parquet", engine="spark",
              repository=repo, progress=progress, cancel=cancel)  # fmt: skip
    assert time.monotonic() - failures[0] < 30  # promptly, not after the slow model's 600 s
    assert time.monotonic() - started < 90
    assert os.listdir(out) == []


def test_without_pyspark_or_java_the_message_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models, inputs
) -> None:
    plan = batch.plan_run(inputs["csv"], tmp_path / "out.csv")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert not spark_engine.spark_available()
    with pytest.raises(InvalidInput, match="needs Java"):
        spark_engine.score_files(models["classifier"], plan)
    monkeypatch.setattr(spark_engine.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InvalidInput, match=r"pip install 'jupyter_sparkserve\[spark\]'"):
        spark_engine.score_files(models["classifier"], plan)


def test_a_missing_jar_is_named(spark, tmp_path: Path, models, inputs) -> None:
    plan = batch.plan_run(inputs["csv"], tmp_path / "out.csv")
    with pytest.raises(InvalidInput, match=r"nothing\.jar"):
        spark_engine.score_files(
            models["classifier"], plan, lib_jars=[str(tmp_path / "nothing.jar")]
        )
