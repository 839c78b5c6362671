"""The model side of batch scoring: a loaded model (a scikit-learn folder read by
`fast_sklearn`, else MLflow's pyfunc) that scores Arrow batches and DataFrames, and its
predictions turned into output columns."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import InvalidInput


class BatchModel:
    """A loaded model that scores Arrow batches and DataFrames.

    A scikit-learn folder `fast_sklearn` understands is loaded without importing MLflow
    (`loader` is "sparkserve"): MLflow's pyfunc model is then loaded only for a frame MLflow's
    schema enforcement would change or refuse. Any other folder is MLflow's pyfunc model
    (`loader` is "mlflow")."""

    def __init__(
        self,
        input_schema: Any,
        numeric: tuple[str, ...] | None,
        direct: Callable[[Any], Any] | None,
        *,
        pyfunc_model: Any = None,
        path: str | None = None,
    ) -> None:
        self.input_schema = input_schema
        self.model_columns = [
            name for name in (self.input_schema.input_names() if self.input_schema else [])
        ] or None
        # All-double signature: the float64 frame MLflow's schema enforcement would build is
        # what the reader already produced, so predict goes straight to the flavor.
        self._numeric = numeric
        self._direct = direct  # the flavor's predict, for frames enforcement leaves as they are
        self._pyfunc = pyfunc_model
        self._path = path
        self.loader = "mlflow" if pyfunc_model is not None else "sparkserve"

    @classmethod
    def from_pyfunc(cls, pyfunc_model: Any) -> BatchModel:
        from ..protocol import ModelInput

        numeric = ModelInput(pyfunc_model).numeric_columns
        direct = pyfunc_model._predict_fn if numeric is not None else None
        schema = pyfunc_model.metadata.get_input_schema()
        return cls(schema, numeric, direct, pyfunc_model=pyfunc_model)

    @classmethod
    def load(cls, model_path: str | os.PathLike[str]) -> BatchModel:
        from .fast_sklearn import NotUnderstood, describe, load_estimator

        try:
            folder = describe(model_path)
        except NotUnderstood:
            return cls.from_pyfunc(_mlflow_pyfunc(model_path))
        schema = folder.schema
        numeric = tuple(schema.input_names())
        if not all(spec.type.name == "double" and spec.required for spec in schema.inputs):
            numeric = None
        estimator = load_estimator(folder)
        return cls(schema, numeric, getattr(estimator, folder.predict_fn), path=str(folder.path))

    @property
    def model(self) -> Any:
        """MLflow's pyfunc model of this folder (loaded here on first need)."""
        if self._pyfunc is None:
            self._pyfunc = _mlflow_pyfunc(self._path or "")
        return self._pyfunc

    def predict_frame(self, frame: Any) -> Any:
        try:
            dtypes = frame.dtypes
            if self._numeric is not None and all(
                name in dtypes and str(dtypes[name]) == "float64" for name in self._numeric
            ):
                return self._direct(frame[list(self._numeric)])
            if self.loader == "sparkserve":
                from .fast_sklearn import unchanged_frame

                unchanged = unchanged_frame(self.input_schema, frame)
                if unchanged is not None:
                    return self._direct(unchanged)
            return self.model.predict(frame)
        except Exception as error:
            exceptions = sys.modules.get("mlflow.exceptions")  # imported if MLflow could raise
            if exceptions is None or not isinstance(error, exceptions.MlflowException):
                raise
            # MLflow's schema errors quote the whole input before saying what is wrong.
            reason = error.message.rpartition(". Error: ")[2] or error.message
            raise InvalidInput(f"The model refused the input: {reason}") from None

    def predict_batch(self, batch: Any) -> Any:
        # Optional signature columns may be absent from a file (plan_run checked the rest).
        present = set(batch.schema.names)
        columns = [name for name in self.model_columns or () if name in present]
        table = batch.select(columns) if columns else batch
        return self.predict_frame(table.to_pandas())


def _mlflow_pyfunc(model_path: str | os.PathLike[str]) -> Any:
    from ..skops_types import prepare_loading

    prepare_loading(model_path)  # before MLflow: see there
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(os.fspath(model_path))


def input_schema(model_path: str | os.PathLike[str]) -> Any:
    """The folder's input schema, read without MLflow when `fast_sklearn` understands it."""
    from .fast_sklearn import NotUnderstood, describe

    try:
        return describe(model_path).schema
    except NotUnderstood:
        pass
    from ..skops_types import prepare_loading

    prepare_loading(model_path)  # before MLflow: see there
    from mlflow.models import Model

    return Model.load(os.fspath(model_path)).get_input_schema()


def prediction_columns(predictions: Any, n_rows: int, prediction_column: str) -> dict[str, Any]:
    """Output columns (name -> 1-D values) for a model's predictions on `n_rows` rows.

    A 1-D result is one column named `prediction_column`; a 2-D array gives
    `{prediction_column}_{i}` per output (one column if it has one); a DataFrame or a dict
    of arrays keeps its own names.
    """
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        columns = {str(name): predictions[name].to_numpy() for name in predictions.columns}
    elif isinstance(predictions, pd.Series):
        columns = {prediction_column: predictions.to_numpy()}
    elif isinstance(predictions, dict):
        columns = {str(k): np.asarray(v) for k, v in predictions.items()}
    else:
        if isinstance(predictions, list) and predictions and isinstance(predictions[0], dict):
            return prediction_columns(pd.DataFrame(predictions), n_rows, prediction_column)
        array = np.asarray(predictions)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 1:
            columns = {prediction_column: array}
        elif array.ndim == 2:
            columns = {f"{prediction_column}_{i}": array[:, i] for i in range(array.shape[1])}
        else:
            columns = {prediction_column: list(array)}  # one tensor per row
    for name, values in columns.items():
        if len(values) != n_rows:
            raise InvalidInput(
                f"The model returned {len(values)} values for output {name!r} for {n_rows} "
                "rows: batch scoring needs one prediction per input row."
            )
    return columns


def prediction_frame(predictions: Any, n_rows: int, prediction_column: str) -> Any:
    import pandas as pd

    return pd.DataFrame(prediction_columns(predictions, n_rows, prediction_column))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, modified: float) -> BatchModel:
    return BatchModel.load(path)


def load_batch_model(model_path: Path) -> BatchModel:
    """A loaded model, kept for the next call: repository versions never change in place,
    and an outside folder is reloaded when its MLmodel changes."""
    return _load_cached(str(model_path), (model_path / "MLmodel").stat().st_mtime)
