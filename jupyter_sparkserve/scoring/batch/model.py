"""The model side of batch scoring: a loaded pyfunc model that scores Arrow batches and
DataFrames, and its predictions turned into output columns."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ...errors import InvalidInput


class BatchModel:
    """A loaded pyfunc model that scores Arrow batches and DataFrames."""

    def __init__(self, pyfunc_model: Any) -> None:
        from ..protocol import ModelInput

        self.model = pyfunc_model
        self.input_schema = pyfunc_model.metadata.get_input_schema()
        self.model_columns = [
            name for name in (self.input_schema.input_names() if self.input_schema else [])
        ] or None
        # All-double signature: the float64 frame MLflow's schema enforcement would build is
        # what the reader already produced, so predict goes straight to the flavor.
        self._numeric = ModelInput(pyfunc_model).numeric_columns

    @classmethod
    def load(cls, model_path: str | os.PathLike[str]) -> BatchModel:
        from ..skops_types import prepare_loading

        prepare_loading(model_path)
        import mlflow.pyfunc

        return cls(mlflow.pyfunc.load_model(os.fspath(model_path)))

    def predict_frame(self, frame: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            dtypes = frame.dtypes
            if self._numeric is not None and all(
                name in dtypes and str(dtypes[name]) == "float64" for name in self._numeric
            ):
                return self.model._predict_fn(frame[list(self._numeric)])
            return self.model.predict(frame)
        except MlflowException as error:
            # MLflow's schema errors quote the whole input before saying what is wrong.
            reason = error.message.rpartition(". Error: ")[2] or error.message
            raise InvalidInput(f"The model refused the input: {reason}") from None

    def predict_batch(self, batch: Any) -> Any:
        # Optional signature columns may be absent from a file (plan_run checked the rest).
        present = set(batch.schema.names)
        columns = [name for name in self.model_columns or () if name in present]
        table = batch.select(columns) if columns else batch
        return self.predict_frame(table.to_pandas())


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
