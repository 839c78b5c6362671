"""sparkserve's own loader for scikit-learn folders (scoring/batch/fast_sklearn.py) against
MLflow's `pyfunc.load_model`: the same predictions to the bit, the same scored files, the same
refusals; folders it does not understand go to MLflow; a fresh `sparkserve score` of a folder
it understands never imports MLflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import FAST_SAVE

from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository.flavors import save_python_model
from jupyter_sparkserve.scoring import batch
from jupyter_sparkserve.scoring.batch import BatchModel
from jupyter_sparkserve.scoring.batch.model import input_schema

COLORS = np.array(["red", "green", "blue", "amber"])


def mixed_frame(rows: int, seed: int) -> pd.DataFrame:
    """A string, a double and a long column (an MLflow signature of three types)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": COLORS[rng.integers(0, len(COLORS), rows)],
            "size": rng.normal(size=rows).round(6),
            "count": rng.integers(0, 50, rows),
        }
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, iris, iris_model) -> dict[str, Path]:
    """One MLflow folder per kind the fast path takes, saved as the repository saves them."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("fast-load")
    features, _ = iris
    mixed = mixed_frame(400, seed=1)
    label = ((mixed["size"] > 0) ^ (mixed["color"] == "red")).astype(int)
    pipeline = make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), ["color"])], remainder="passthrough"
        ),
        LogisticRegression(),
    ).fit(mixed, label)
    regressor = Ridge().fit(mixed[["size", "count"]], mixed["size"] * 3 + mixed["count"])
    models = {
        "classifier": (iris_model, features.head(3), {}),
        "pipeline": (pipeline, mixed.head(3), {"pyfunc_predict_fn": "predict_proba"}),
        "regressor": (regressor, mixed[["size", "count"]].head(3), {}),
        "pickle": (iris_model, features.head(3), {"serialization_format": "pickle"}),
        "cloudpickle": (pipeline, mixed.head(3), {"serialization_format": "cloudpickle"}),
        "unsigned": (iris_model, None, {}),  # no signature: MLflow's loader
    }
    for name, (model, example, options) in models.items():
        save_python_model(
            model,
            root / name,
            input_example=example,
            flavor_options=options,
            pip_requirements=FAST_SAVE["pip_requirements"],
        )
    return {name: root / name for name in models}


def both(folder: Path) -> tuple[BatchModel, BatchModel]:
    """The folder through sparkserve's loader and through MLflow's."""
    ours = BatchModel.load(folder)
    theirs = BatchModel.from_pyfunc(mlflow.pyfunc.load_model(str(folder)))
    assert (ours.loader, theirs.loader) == ("sparkserve", "mlflow")
    return ours, theirs


def frames_for(name: str, iris) -> pd.DataFrame:
    features, _ = iris
    if name in ("classifier", "pickle"):
        return pd.concat([features] * 3, ignore_index=True)
    frame = mixed_frame(500, seed=2)
    return frame[["size", "count"]] if name == "regressor" else frame


def assert_same(ours: object, theirs: object) -> None:
    assert type(ours) is type(theirs)
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.tobytes() == theirs.tobytes()  # to the bit


@pytest.mark.parametrize("name", ["classifier", "pipeline", "regressor", "pickle", "cloudpickle"])
def test_scored_files_and_predictions_are_mlflows_to_the_bit(
    tmp_path: Path, folders, iris, name: str
) -> None:
    folder = folders[name]
    ours, theirs = both(folder)
    frame = frames_for(name, iris)
    assert_same(ours.predict_frame(frame), mlflow.pyfunc.load_model(str(folder)).predict(frame))
    assert ours._pyfunc is None  # answered without MLflow

    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    # The plan is typed from the signature read without MLflow, as from MLflow's.
    schema = input_schema(folder)
    assert batch.arrow_types_for(schema) == batch.arrow_types_for(theirs.input_schema)
    assert batch.required_columns(schema) == batch.required_columns(theirs.input_schema)
    outputs = {}
    for label, model in (("ours", ours), ("theirs", theirs)):
        outputs[label] = tmp_path / f"{label}.parquet"
        plan = batch.plan_run(source, outputs[label], input_schema=schema)
        batch.run(model, plan)
    scored, expected = pq.read_table(outputs["ours"]), pq.read_table(outputs["theirs"])
    assert scored.schema == expected.schema and scored.equals(expected)
    names = expected.column_names[len(frame.columns) :]
    assert names == (["prediction_0", "prediction_1"] if name == "pipeline" else ["prediction"])
    assert ours._pyfunc is None


def refusal(model: BatchModel, frame: pd.DataFrame) -> str:
    with pytest.raises(InvalidInput) as caught:
        model.predict_frame(frame)
    return str(caught.value)


def test_schema_enforcement_is_mlflows_for_mismatched_input(folders, iris) -> None:
    features, _ = iris
    ours, theirs = both(folders["pipeline"])
    frame = mixed_frame(50, seed=3)

    missing = refusal(ours, frame.drop(columns=["color"]))
    assert missing == refusal(theirs, frame.drop(columns=["color"]))
    assert missing == "The model refused the input: Model is missing inputs ['color']."

    fractions = frame.assign(count=frame["count"] + 0.5)  # a long column of fractions
    refused = refusal(ours, fractions)
    assert refused == refusal(theirs, fractions) and "Incompatible input types" in refused
    numbers = frame.assign(color=np.arange(50))  # a string column of integers
    assert refusal(ours, numbers) == refusal(theirs, numbers)

    # Types MLflow converts: int32 to long, int32 to double. Converted the same way.
    narrow = frame.assign(count=frame["count"].astype("int32"))
    assert_same(ours.predict_frame(narrow), theirs.predict_frame(narrow))
    classifier, reference = both(folders["classifier"])
    integers = features.round().astype("int32")
    assert_same(classifier.predict_frame(integers), reference.predict_frame(integers))
    wide = features.round().astype("int64")  # refused: int64 to double may lose digits
    assert refusal(classifier, wide) == refusal(reference, wide)
    # Extra columns are left out, in any order, as MLflow leaves them out.
    shuffled = frame.assign(extra=1)[["extra", "count", "size", "color"]]
    assert_same(ours.predict_frame(shuffled), theirs.predict_frame(shuffled))


def test_folders_it_does_not_understand_go_to_mlflow(
    tmp_path: Path, folders, iris, monkeypatch: pytest.MonkeyPatch
) -> None:
    features, _ = iris
    unsigned = BatchModel.load(folders["unsigned"])
    assert unsigned.loader == "mlflow"
    reference = mlflow.pyfunc.load_model(str(folders["unsigned"])).predict(features)
    assert_same(unsigned.predict_frame(features), reference)

    # A pinned requirement this environment does not meet: MLflow's loader (and its warning).
    pinned = shutil.copytree(folders["classifier"], tmp_path / "pinned")
    (pinned / "requirements.txt").write_text("mlflow\nscikit-learn==0.20.0\n")
    assert BatchModel.load(pinned).loader == "mlflow"

    # MLflow's switch against deserializing: MLflow's loader refuses, in MLflow's words.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(Exception, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        BatchModel.load(folders["classifier"])


def fresh_score_imports(ref: str, source: Path, output: Path, home: Path) -> set[str]:
    """The modules a fresh `sparkserve score` process imported (its -X importtime list)."""
    env = {**os.environ, "SPARKSERVE_HOME": str(home), "SPARKSERVE_WARM_SCORER": "off"}
    files = (str(source), str(output))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jupyter_sparkserve", "score", ref, *files],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_a_fresh_score_of_an_sklearn_model_does_not_import_mlflow(
    tmp_path: Path, repo: ModelRepository, home: Path, folders, iris
) -> None:
    features, _ = iris
    source = tmp_path / "in.csv"
    features.to_csv(source, index=False)
    repo.import_model(folders["classifier"], "iris")

    fast = fresh_score_imports("iris:1", source, tmp_path / "fast.parquet", home)
    assert "sklearn" in fast and "skops.io" in fast
    assert not {name for name in fast if name.split(".")[0] == "mlflow"}
    expected = mlflow.pyfunc.load_model(str(folders["classifier"])).predict(features)
    assert_same(pq.read_table(tmp_path / "fast.parquet")["prediction"].to_numpy(), expected)


SCIPY_PROBE = """
import json
from jupyter_sparkserve.launcher import skip_scipy_doc_notes
skip_scipy_doc_notes()
import scipy._lib._docscrape as docscrape, scipy.stats, sklearn.linear_model
print(json.dumps({
    "scraper": docscrape.FunctionDoc.__module__,
    "gmean": float(scipy.stats.gmean([1.0, 4.0])),
    "ranks": scipy.stats.rankdata([30, 10, 20]).tolist(),
    "doc": scipy.stats.gmean.__doc__,
}))
"""


def test_a_command_leaves_scipys_docstrings_as_they_are() -> None:
    """The launcher's hook: scipy's scraper replaced, scipy and scikit-learn working."""
    import json

    import scipy.stats

    done = subprocess.run(
        [sys.executable, "-c", SCIPY_PROBE], capture_output=True, text=True, check=True
    )
    answer = json.loads(done.stdout)
    assert answer["scraper"] == "jupyter_sparkserve.launcher"
    assert (answer["gmean"], answer["ranks"]) == (2.0, [3.0, 1.0, 2.0])
    assert answer["doc"].startswith("Compute the weighted geometric mean")
    assert "Array API" in scipy.stats.gmean.__doc__ and "Array API" not in answer["doc"]
