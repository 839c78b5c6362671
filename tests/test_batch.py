"""The local batch engine against in-process predictions, on real files of every format."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _files import read_any, write_parts
from conftest import FAST_SAVE

from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.scoring import batch
from jupyter_sparkserve.scoring.batch import writers
from jupyter_sparkserve.scoring.offline import score, score_dataframe

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def iris_ref(repo: ModelRepository, iris, iris_model) -> str:
    return repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE).ref


@pytest.fixture
def frame(iris) -> pd.DataFrame:
    """3,000 rows with an id column, rows shuffled so that order mistakes show."""
    features, _ = iris
    rows = pd.concat([features] * 20, ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=3).reset_index(drop=True)
    rows.insert(0, "id", np.arange(len(rows)))
    return rows


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if writers.PARTIAL_MARKER in p.name)


@pytest.mark.parametrize("input_format", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("output_name", ["scored.parquet", "scored.csv", "scored.jsonl", "folder"])
def test_matches_in_process_predict_row_for_row(
    tmp_path: Path, repo, iris_ref, iris_model, frame, input_format, output_name
) -> None:
    source = write_parts(frame, tmp_path / "in", input_format)
    output = tmp_path / output_name
    result = score(iris_ref, source, output, repository=repo)

    scored = read_any(output)
    assert result.rows == len(frame) == len(scored)
    assert result.files == 3
    assert result.prediction_columns == ["prediction"]
    assert list(scored.columns) == ["id", *FEATURES, "prediction"]
    assert scored["id"].tolist() == frame["id"].tolist()
    expected = iris_model.predict(frame[FEATURES])
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), expected)
    np.testing.assert_allclose(scored[FEATURES].to_numpy(), frame[FEATURES].to_numpy())
    if output_name == "folder":
        suffix = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}[input_format]
        assert sorted(p.name for p in output.iterdir()) == [
            writers.FOLDER_MARKER,
            *(f"part-{i}{suffix}" for i in range(3)),
        ]
    assert leftovers(tmp_path) == []


def test_keeps_the_columns_asked_for_and_names_the_prediction(
    tmp_path: Path, repo, iris_ref, frame
) -> None:
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    output = tmp_path / "out.csv"
    score(
        iris_ref, source, output, keep_columns=["id"], prediction_column="species", repository=repo
    )
    assert list(pd.read_csv(output).columns) == ["id", "species"]


class TwoOutputs(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"total": model_input.sum(axis=1), "largest": model_input.max(axis=1)})


class ArrayOutputs(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return np.stack([model_input["a"] * 2, model_input["b"] * 3], axis=1)


def test_a_model_with_several_outputs_gets_several_columns(tmp_path: Path, repo) -> None:
    data = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    data.to_csv(tmp_path / "in.csv", index=False)
    repo.save(TwoOutputs(), "two", input_example=data.head(2), pip_requirements=["pandas"])
    repo.save(ArrayOutputs(), "array", input_example=data.head(2), pip_requirements=["pandas"])

    named = score("two", tmp_path / "in.csv", tmp_path / "named.parquet", repository=repo)
    assert named.prediction_columns == ["total", "largest"]
    assert pd.read_parquet(tmp_path / "named.parquet").to_dict("list") == {
        "a": [1.0, 2.0, 3.0],
        "b": [4.0, 5.0, 6.0],
        "total": [5.0, 7.0, 9.0],
        "largest": [4.0, 5.0, 6.0],
    }
    array = score("array", tmp_path / "in.csv", tmp_path / "array.csv", repository=repo)
    assert array.prediction_columns == ["prediction_0", "prediction_1"]
    scored = pd.read_csv(tmp_path / "array.csv")
    assert scored["prediction_0"].tolist() == [2.0, 4.0, 6.0]
    assert scored["prediction_1"].tolist() == [12.0, 15.0, 18.0]


def test_progress_reaches_the_end(tmp_path: Path, repo, iris_ref, frame) -> None:
    big = pd.concat([frame] * 40, ignore_index=True)  # 120k rows: several batches
    big.to_csv(tmp_path / "in.csv", index=False)
    big.to_parquet(tmp_path / "in.parquet")
    for source in ("in.csv", "in.parquet"):
        reports: list[batch.BatchProgress] = []
        score(iris_ref, tmp_path / source, tmp_path / "out.parquet", repository=repo,
              progress=reports.append)  # fmt: skip
        assert reports[-1].rows_done == len(big)
        assert reports[-1].fraction == 1.0
        done = [r.rows_done for r in reports]
        assert done == sorted(done)
    assert reports[-1].rows_total == len(big)  # known from Parquet metadata


def test_cancelling_leaves_no_output(tmp_path: Path, repo, iris_ref, frame) -> None:
    pd.concat([frame] * 100, ignore_index=True).to_csv(tmp_path / "in.csv", index=False)
    cancel = threading.Event()
    seen: list[int] = []

    def cancel_after_first(progress: batch.BatchProgress) -> None:
        seen.append(progress.rows_done)
        cancel.set()

    (tmp_path / "out.parquet").write_bytes(b"the previous run's output")
    with pytest.raises(batch.Cancelled):
        score(iris_ref, tmp_path / "in.csv", tmp_path / "out.parquet", repository=repo,
              progress=cancel_after_first, cancel=cancel)  # fmt: skip
    assert seen
    assert (tmp_path / "out.parquet").read_bytes() == b"the previous run's output"
    assert leftovers(tmp_path) == []


def test_a_bad_value_deep_in_a_file_fails_naming_file_and_column(
    tmp_path: Path, repo, iris_ref, frame
) -> None:
    big = pd.concat([frame] * 100, ignore_index=True).astype({"petal width (cm)": object})
    big.loc[len(big) - 5, "petal width (cm)"] = "n/a?"  # far past the first block
    big.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput) as caught:
        score(iris_ref, tmp_path / "in.csv", tmp_path / "out", repository=repo)
    assert str(tmp_path / "in.csv") in caught.value.message
    assert "'petal width (cm)'" in caught.value.message
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_an_output_folder_of_ours_is_replaced_whole_and_a_foreign_one_refused(
    tmp_path: Path, repo, iris_ref, frame
) -> None:
    three = write_parts(frame, tmp_path / "three", "parquet", parts=3)
    two = write_parts(frame, tmp_path / "two", "parquet", parts=2)
    output = tmp_path / "out"
    score(iris_ref, three, output, repository=repo)
    (output / "notes.txt").write_text("added by hand to a folder sparkserve wrote")
    score(iris_ref, two, output, repository=repo)
    assert sorted(p.name for p in output.iterdir()) == [
        writers.FOLDER_MARKER,
        "part-0.parquet",
        "part-1.parquet",
    ]
    assert len(read_any(output)) == len(frame)  # readers skip the hidden marker
    assert leftovers(tmp_path) == []

    foreign = tmp_path / "reports"
    foreign.mkdir()
    (foreign / "q3.xlsx").write_bytes(b"someone's work")
    message = bad_input_message(tmp_path, repo, iris_ref, two, output=foreign)
    assert "holds files sparkserve did not write" in message
    assert (foreign / "q3.xlsx").read_bytes() == b"someone's work"
    score(iris_ref, two, tmp_path / "empty-is-fine", repository=repo)


def test_a_swap_cut_short_is_undone_and_other_runs_are_left_alone(tmp_path: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "new.parquet").write_bytes(b"new")
    previous = tmp_path / f".out{writers.PREVIOUS_MARKER}job1"
    previous.mkdir()
    (previous / "old.parquet").write_bytes(b"old")
    # Killed after the old output moved aside but before the new one moved in:
    output.rename(batch.partial_path(output, "job1"))
    other_run = batch.partial_path(output, "job2")
    other_run.write_bytes(b"another run, still writing")

    assert batch.remove_partial_outputs(output, "job1") == [batch.partial_path(output, "job1")]
    assert [p.name for p in output.iterdir()] == ["old.parquet"]  # the old output is back
    assert other_run.read_bytes() == b"another run, still writing"


@pytest.mark.parametrize("output_name", ["out.parquet", "out.csv", "folder"])
def test_an_input_without_rows_gives_a_valid_empty_output(
    tmp_path: Path, repo, iris_ref, frame, output_name
) -> None:
    frame.head(0).to_csv(tmp_path / "in.csv", index=False)
    result = score(iris_ref, tmp_path / "in.csv", tmp_path / output_name, repository=repo)
    assert result.rows == 0
    scored = read_any(tmp_path / output_name)
    assert list(scored.columns) == ["id", *FEATURES, "prediction"]
    assert len(scored) == 0


def test_an_input_gone_after_planning_is_a_clear_error(
    tmp_path: Path, repo, iris_ref, frame
) -> None:
    from jupyter_sparkserve.scoring.batch import load_batch_model

    frame.to_parquet(tmp_path / "in.parquet")
    plan = batch.plan_run(tmp_path / "in.parquet", tmp_path / "out.csv")
    (tmp_path / "in.parquet").unlink()
    with pytest.raises(InvalidInput, match=r"Cannot read .*in\.parquet"):
        batch.run(load_batch_model(repo.resolve(iris_ref).path), plan)
    assert leftovers(tmp_path) == []


def test_remove_partial_outputs_cleans_what_a_killed_run_left(tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    batch.partial_path(output, "job1").write_bytes(b"half")
    batch.partial_path(tmp_path / "out", "job1").mkdir()
    (tmp_path / "unrelated.parquet").write_bytes(b"keep")
    assert batch.remove_partial_outputs(output, "job1") == [batch.partial_path(output, "job1")]
    assert batch.remove_partial_outputs(tmp_path / "out", "job1") == [
        batch.partial_path(tmp_path / "out", "job1")
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["unrelated.parquet"]


# ------------------------------------------------------------------- checked before scoring


def bad_input_message(tmp_path: Path, repo, iris_ref, source, output=None, **options) -> str:
    output = output or tmp_path / "out.parquet"
    existed = Path(output).exists()
    with pytest.raises(InvalidInput) as caught:
        score(iris_ref, source, output, repository=repo, **options)
    assert Path(output).exists() == existed
    if Path(output).parent.is_dir():
        assert leftovers(Path(output).parent) == []
    return caught.value.message


def test_missing_column_names_file_and_column(tmp_path: Path, repo, iris_ref, frame) -> None:
    folder = write_parts(frame, tmp_path / "in", "csv", parts=2)
    pd.read_csv(folder / "part-1.csv").drop(columns=["petal length (cm)"]).to_csv(
        folder / "part-1.csv", index=False
    )
    message = bad_input_message(tmp_path, repo, iris_ref, folder)
    assert str(folder / "part-1.csv") in message
    assert "'petal length (cm)'" in message and "the model needs" in message


def test_wrong_type_names_file_and_column(tmp_path: Path, repo, iris_ref, frame) -> None:
    wrong = frame.astype({"sepal width (cm)": str})
    wrong["sepal width (cm)"] = "wide"
    wrong.to_parquet(tmp_path / "in.parquet")
    message = bad_input_message(tmp_path, repo, iris_ref, tmp_path / "in.parquet")
    assert str(tmp_path / "in.parquet") in message
    assert "'sepal width (cm)'" in message and "double" in message

    wrong.to_csv(tmp_path / "in.csv", index=False)
    message = bad_input_message(tmp_path, repo, iris_ref, tmp_path / "in.csv")
    assert str(tmp_path / "in.csv") in message and "'sepal width (cm)'" in message
    assert "Row #2" in message and "wide" not in message  # where, never what it holds


def test_unreadable_file(tmp_path: Path, repo, iris_ref) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    message = bad_input_message(tmp_path, repo, iris_ref, tmp_path / "broken.parquet")
    assert message.startswith(f"Cannot read {tmp_path / 'broken.parquet'}")


def test_empty_folder_missing_input_and_empty_glob(tmp_path: Path, repo, iris_ref) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not data")
    assert "has no CSV, Parquet or JSON Lines files" in bad_input_message(
        tmp_path, repo, iris_ref, tmp_path / "empty"
    )
    assert "does not exist" in bad_input_message(tmp_path, repo, iris_ref, tmp_path / "nope.csv")
    assert "No file matches" in bad_input_message(tmp_path, repo, iris_ref, f"{tmp_path}/*.csv")


def test_mixed_formats_and_unknown_extension(tmp_path: Path, repo, iris_ref, frame) -> None:
    write_parts(frame, tmp_path / "in", "csv", parts=1)
    write_parts(frame, tmp_path / "in", "parquet", parts=1)
    assert "mixes formats (csv, parquet)" in bad_input_message(
        tmp_path, repo, iris_ref, tmp_path / "in"
    )
    (tmp_path / "data.txt").write_text("a,b\n1,2\n")
    assert "Cannot tell the format" in bad_input_message(
        tmp_path, repo, iris_ref, tmp_path / "data.txt"
    )


def test_output_problems(tmp_path: Path, repo, iris_ref, frame) -> None:
    frame.to_parquet(tmp_path / "in.parquet")
    source = tmp_path / "in.parquet"
    assert "does not exist" in bad_input_message(
        tmp_path, repo, iris_ref, source, output=tmp_path / "no" / "such" / "out.csv"
    )
    assert "is one of the inputs" in bad_input_message(
        tmp_path, repo, iris_ref, source, output=source
    )
    assert "already has a column 'id'" in bad_input_message(
        tmp_path, repo, iris_ref, source, prediction_column="id"
    )
    assert "Cannot keep column 'nope'" in bad_input_message(
        tmp_path, repo, iris_ref, source, keep_columns=["id", "nope"]
    )
    assert "Unknown output format 'xlsx'" in bad_input_message(
        tmp_path, repo, iris_ref, source, output_format="xlsx"
    )


def test_engine_and_spark_options_are_checked(tmp_path: Path, repo, iris_ref, frame) -> None:
    frame.to_parquet(tmp_path / "in.parquet")
    assert "Unknown engine 'gpu'" in bad_input_message(
        tmp_path, repo, iris_ref, tmp_path / "in.parquet", engine="gpu"
    )
    assert "engine 'spark' only" in bad_input_message(
        tmp_path, repo, iris_ref, tmp_path / "in.parquet", spark_config={"a": "b"}
    )


def test_an_arrow_table_with_nulls_in_a_kept_column_streams_through(
    tmp_path: Path, repo, iris_ref, frame
) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        "note", pa.array([None if i % 2 else f"row {i}" for i in range(len(frame))])
    )
    pq.write_table(table, tmp_path / "in.parquet")
    score(iris_ref, tmp_path / "in.parquet", tmp_path / "out.jsonl", repository=repo)
    scored = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert scored["note"].isna().sum() == len(frame) // 2
    assert scored["note"][0] == "row 0"


# -------------------------------------------------------------------------- DataFrames


def test_score_dataframe_matches_predict(repo, iris_ref, iris_model, frame) -> None:
    scored = score_dataframe(iris_ref, frame, repository=repo)
    assert list(scored.columns) == ["id", *FEATURES, "prediction"]
    np.testing.assert_array_equal(scored["prediction"], iris_model.predict(frame[FEATURES]))
    assert scored.index.equals(frame.index)

    reports: list[batch.BatchProgress] = []
    only_id = score_dataframe(iris_ref, frame, keep_columns=["id"], repository=repo,
                              progress=reports.append)  # fmt: skip
    assert list(only_id.columns) == ["id", "prediction"]
    assert reports[-1].fraction == 1.0


def test_score_dataframe_errors_say_what_to_fix(repo, iris_ref, frame) -> None:
    with pytest.raises(InvalidInput, match="Expected a pandas DataFrame, got list"):
        score_dataframe(iris_ref, [1, 2], repository=repo)
    with pytest.raises(InvalidInput, match="has no column 'nope'"):
        score_dataframe(iris_ref, frame, keep_columns=["nope"], repository=repo)
    with pytest.raises(InvalidInput, match=r"no column 'petal width \(cm\)', which the model"):
        score_dataframe(iris_ref, frame.drop(columns=["petal width (cm)"]), repository=repo)
    wrong = frame.astype({"petal width (cm)": str}).assign(**{"petal width (cm)": "wide"})
    with pytest.raises(InvalidInput) as caught:
        score_dataframe(iris_ref, wrong, repository=repo)
    assert caught.value.message.startswith("The model refused the input:")
    assert "petal width (cm)" in caught.value.message
    assert len(caught.value.message) < 400  # the reason, not a dump of the frame


def test_read_errors_never_quote_the_files_contents(tmp_path: Path) -> None:
    """A job's error names the file and the column, never what the file holds."""
    from mlflow.types import ColSpec, Schema

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\nroot:x:0:0:s3cr3t-row,2,3\n")
    typed = tmp_path / "typed.csv"
    typed.write_text("a,b\n1.0,2.0\ns3cr3t-value,2.0\n")
    schema = Schema([ColSpec("double", "a"), ColSpec("double", "b")])
    for path in (ragged, typed):
        with pytest.raises(InvalidInput) as raised:
            batch.plan_run(path, tmp_path / "out.csv", input_schema=schema)
        assert str(path) in raised.value.message
        assert "s3cr3t" not in raised.value.message, raised.value.message


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 256 KiB tmpfs: a real file system that runs out of space (needs root to mount)."""
    import subprocess

    from conftest import require_component

    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    require_component("a tmpfs mount", mounted.returncode == 0, "run the tests as root (CI does)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("output_name", ["scored.csv", "scored.parquet", "scored.jsonl", "folder"])
def test_a_full_disk_names_the_output_and_leaves_nothing(
    tmp_path: Path, repo, iris_ref, frame, full_disk: Path, output_name: str
) -> None:
    from jupyter_sparkserve.errors import NoSpaceForOutput

    rows = pd.concat([frame] * 10, ignore_index=True)
    rows["noise"] = np.random.default_rng(0).normal(size=len(rows))  # Parquet can't shrink it
    source = write_parts(rows, tmp_path / "in", "csv")
    output = full_disk / output_name
    with pytest.raises(NoSpaceForOutput) as raised:
        score(iris_ref, source, output, repository=repo)
    assert str(output) in raised.value.message
    assert "No space left" in raised.value.message
    assert list(full_disk.iterdir()) == []  # no output, no partial file
