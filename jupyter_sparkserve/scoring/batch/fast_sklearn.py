"""A scikit-learn MLflow folder loaded without importing MLflow.

`import mlflow` costs about 0.8 s in a fresh process (it always imports `mlflow.genai` and the
tracking client), most of a first `sparkserve score`'s time beyond scikit-learn itself. For
the common folder, a scikit-learn model in the `sklearn` flavor with a column signature, what
`mlflow.pyfunc.load_model` does is small: read MLmodel, unpickle (or skops-load) one file,
and, per call, enforce the signature. This module does that for exactly the folders it fully
understands (`describe` says why not otherwise, and the caller uses MLflow's loader):

- `python_function` with `loader_module: mlflow.sklearn`, no code paths, model config,
  streaming or external artifacts; a `predict_fn` the flavor's wrapper binds to the estimator;
- `sklearn` with serialization format skops, pickle or cloudpickle, saved by the scikit-learn
  installed here, and a Python of the same major.minor;
- a signature of named columns of plain types, no params, no type-hint conversions;
- a requirements.txt MLflow would not warn about (each line a name, or `name==version` of
  the installed version), and MLflow's own switch to allow deserialization left on.

Predictions are MLflow's: a frame whose columns MLflow's enforcement would hand the flavor
unchanged (the same Series objects, the same `pd.DataFrame(dict)` around them) goes straight to
the estimator; anything else (a missing column, a type MLflow converts or refuses) is given
to MLflow's own `PyFuncModel.predict`, loaded on first need (`BatchModel` does that).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# MLflow's column types this loader reads, and the NumPy dtype MLflow's enforcement passes
# through unchanged for each (`string` is special: object or any pandas StringDtype).
PLAIN_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": None,
}
SERIALIZATIONS = ("skops", "pickle", "cloudpickle")
# What `mlflow.sklearn._SklearnModelWrapper` binds straight to the estimator's own method.
PREDICT_FUNCTIONS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba")


@dataclass(frozen=True)
class ColumnType:
    """A column's MLflow type, by its `DataType` name (what `plan.arrow_types_for` reads)."""

    name: str


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    required: bool


@dataclass(frozen=True)
class ColumnSchema:
    """The named column signature, with the part of MLflow's `Schema` batch scoring uses."""

    inputs: tuple[ColumnSpec, ...]

    def is_tensor_spec(self) -> bool:
        return False

    def has_input_names(self) -> bool:
        return True

    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def required_input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs if spec.required]


@dataclass(frozen=True)
class SklearnFolder:
    """What `describe` found in a folder it understands."""

    path: Path
    model_file: Path
    serialization: str
    trusted_types: list[str] | None
    predict_fn: str
    schema: ColumnSchema


class NotUnderstood(Exception):
    """The folder needs MLflow's loader; the message says why."""


def describe(model_path: str | os.PathLike[str]) -> SklearnFolder:
    """The folder's model file and signature, or NotUnderstood."""
    import yaml

    path = Path(model_path)
    try:
        text = (path / "MLmodel").read_text()
        meta = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise NotUnderstood(f"MLmodel unreadable: {error}") from None
    if not isinstance(meta, dict):
        raise NotUnderstood("MLmodel is not a mapping")
    _require(not _deserialization_refused(), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION is off")
    metadata = meta.get("metadata") or {}
    _require(isinstance(metadata, dict), "MLmodel's metadata is not a mapping")
    _require(not metadata.get("mlflow.model.isExternal"), "the model's artifacts are external")
    for flag in ("is_signature_from_type_hint", "type_hint_from_example"):
        _require(not meta.get(flag), f"{flag} is set")
    flavors = meta.get("flavors") or {}
    pyfunc, sklearn_conf = flavors.get("python_function"), flavors.get("sklearn")
    _require(isinstance(pyfunc, dict) and isinstance(sklearn_conf, dict), "not an sklearn model")
    _require(pyfunc.get("loader_module") == "mlflow.sklearn", "another pyfunc loader")
    for key in ("code", "data", "model_config", "streamable"):
        _require(not pyfunc.get(key), f"python_function has {key}")
    _require(not sklearn_conf.get("code"), "sklearn flavor has code")
    predict_fn = pyfunc.get("predict_fn", "predict")
    _require(predict_fn in PREDICT_FUNCTIONS, f"predict_fn {predict_fn!r}")
    serialization = sklearn_conf.get("serialization_format", "pickle")
    _require(serialization in SERIALIZATIONS, f"serialization {serialization!r}")
    model_file = pyfunc.get("model_path")
    _require(isinstance(model_file, str) and model_file != "", "no model_path")
    _require((path / model_file).is_file(), "model_path is not a file")
    trusted = sklearn_conf.get("skops_trusted_types")
    _require(trusted is None or _strings(trusted), "skops_trusted_types is not a list of names")
    _require(_same_python(pyfunc.get("python_version")), "saved by another Python")
    _require(_same_sklearn(sklearn_conf.get("sklearn_version")), "saved by another scikit-learn")
    _require(_requirements_met(path / "requirements.txt"), "requirements MLflow would warn about")
    return SklearnFolder(
        path=path,
        model_file=path / model_file,
        serialization=serialization,
        trusted_types=list(trusted) if trusted is not None else None,
        predict_fn=predict_fn,
        schema=_signature(meta.get("signature")),
    )


def load_estimator(folder: SklearnFolder) -> Any:
    """The estimator, loaded as `mlflow.sklearn._load_model_from_local_file` loads it."""
    if folder.serialization == "skops":
        from ..skops_types import import_skops_io

        import_skops_io()
        import skops.io

        return skops.io.load(folder.model_file, trusted=folder.trusted_types)
    with folder.model_file.open("rb") as file:
        if folder.serialization == "pickle":
            import pickle

            return pickle.load(file)
        import cloudpickle

        return cloudpickle.load(file)


def unchanged_frame(schema: ColumnSchema, frame: Any) -> Any | None:
    """The frame MLflow's schema enforcement would hand the flavor, when it would change no
    column: built as `_enforce_named_col_schema` builds it, from the same Series. None when
    MLflow's enforcement has something to say (convert, refuse, name a missing column)."""
    import pandas as pd

    columns = {}
    for spec in schema.inputs:
        if spec.name not in frame:
            if spec.required:
                return None
            continue
        values = frame[spec.name]
        if not isinstance(values, pd.Series) or not passes_unchanged(spec.type.name, values.dtype):
            return None
        columns[spec.name] = values
    return pd.DataFrame(columns)


def passes_unchanged(type_name: str, dtype: Any) -> bool:
    """Whether `_enforce_mlflow_datatype` returns a column of `dtype` as it is for this type."""
    import numpy as np
    import pandas as pd

    if type_name == "string":
        return dtype == object or isinstance(dtype, pd.StringDtype)  # noqa: E721 (MLflow's test)
    return isinstance(dtype, np.dtype) and dtype == np.dtype(PLAIN_DTYPES[type_name])


def _signature(signature: Any) -> ColumnSchema:
    _require(isinstance(signature, dict), "no signature")
    _require(not signature.get("params"), "the signature has params")
    try:
        inputs = json.loads(signature.get("inputs") or "null")
    except (TypeError, ValueError):
        raise NotUnderstood("the signature's inputs are not JSON") from None
    _require(isinstance(inputs, list) and inputs != [], "no input signature")
    specs = []
    for item in inputs:
        _require(isinstance(item, dict) and set(item) <= {"type", "name", "required"}, "spec")
        name, kind, required = item.get("name"), item.get("type"), item.get("required", True)
        _require(isinstance(name, str), "an unnamed input")
        _require(kind in PLAIN_DTYPES, f"input type {kind!r}")
        _require(isinstance(required, bool), "required is not a boolean")
        specs.append(ColumnSpec(name, ColumnType(kind), required))
    _require(len({spec.name for spec in specs}) == len(specs), "repeated input names")
    return ColumnSchema(tuple(specs))


def _deserialization_refused() -> bool:
    # MLflow's boolean variable: unset means allowed; anything but true/1 is MLflow's to judge.
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    return value is not None and value.strip().lower() not in ("true", "1")


def _same_python(saved: Any) -> bool:
    return isinstance(saved, str) and saved.split(".")[:2] == [
        str(sys.version_info.major),
        str(sys.version_info.minor),
    ]


def _same_sklearn(saved: Any) -> bool:
    from importlib import metadata

    try:
        return isinstance(saved, str) and saved == metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return False


def _requirements_met(path: Path) -> bool:
    """No line MLflow's dependency check would warn about, judged conservatively: each line
    is a bare distribution name that is installed, or `name==version` of the installed one."""
    import re
    from importlib import metadata

    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return True  # MLflow checks nothing then
    except (OSError, UnicodeDecodeError):
        return False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([A-Za-z0-9.+!_-]+))?", line)
        if match is None:
            return False
        try:
            installed = metadata.version(match[1])
        except metadata.PackageNotFoundError:
            return False
        if match[2] is not None and match[2] != installed:
            return False
    return True


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise NotUnderstood(reason)
