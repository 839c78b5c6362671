"""MLflow's scoring protocol: request bodies to model input, predictions to response bodies.

The common shapes (JSON `dataframe_split` and `dataframe_records`) are read with orjson into
plain rows, so that the requests waiting in a micro-batch can be merged into one DataFrame and
scored with one `predict` call. Everything else (CSV, Parquet, `instances`/`inputs`,
LLM-style bodies, models with type-hint signatures) goes through MLflow's own parsers, so its
semantics are MLflow's by construction. Errors carry MLflow's error codes and HTTP statuses.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import orjson

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = (CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET)

DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS = (
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
)
SUPPORTED_FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)

# Status for each error code, as MLflow's MlflowException.get_http_status_code gives them.
STATUS_BY_CODE = {
    "BAD_REQUEST": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "UNAUTHENTICATED": 401,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "REQUEST_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL_ERROR": 500,
    "DEADLINE_EXCEEDED": 504,
}


class ScoringError(Exception):
    """A request that cannot be scored, with MLflow's error code."""

    def __init__(self, error_code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(error_code, 500)

    def body(self) -> bytes:
        return orjson.dumps({"error_code": self.error_code, "message": self.message})

    @classmethod
    def from_mlflow(cls, error: Any) -> ScoringError:
        return cls(error.error_code, error.message, error.get_http_status_code())


@dataclass
class ScoringInput:
    """One request's input. `rows`/`columns` or `records` are set on the fast path and can be
    merged with other requests of the same `merge_key`; otherwise `data` is model-ready."""

    n_rows: int
    params: dict[str, Any] | None = None
    merge_key: tuple[Any, ...] | None = None
    columns: list[Any] | None = None
    rows: list[Any] | None = None
    records: list[dict[str, Any]] | None = None
    data: Any = None
    unwrapped: bool = False  # an LLM-style body: answered without the "predictions" wrapper


class ModelInput:
    """What the protocol needs to know about the served model, computed once."""

    def __init__(self, pyfunc_model: Any) -> None:
        self.model = pyfunc_model
        self.metadata = pyfunc_model.metadata
        self.input_schema = self.metadata.get_input_schema()
        # Models whose signature comes from type hints take `inputs` as they are: MLflow's path.
        self.type_hint_signature = bool(
            getattr(self.metadata, "_is_signature_from_type_hint", lambda: False)()
        )
        self.tensor_schema = bool(
            self.input_schema is not None and self.input_schema.is_tensor_spec()
        )

        self.numeric_columns = self._all_double_columns()

    def _all_double_columns(self) -> tuple[str, ...] | None:
        """Input names when every input is a required `double` column and nothing else
        (params, type-hint conversions) stands between the frame and the flavor's predict."""
        from mlflow.types import DataType

        schema = self.input_schema
        if schema is None or self.tensor_schema or not schema.has_input_names():
            return None
        if self.metadata.get_params_schema() is not None or self.type_hint_signature:
            return None
        if getattr(self.metadata, "_is_type_hint_from_example", lambda: False)():
            return None
        specs = schema.inputs
        if not all(getattr(s, "type", None) == DataType.double and s.required for s in specs):
            return None
        if not callable(getattr(self.model, "_predict_fn", None)):
            return None
        return tuple(schema.input_names())

    def predict_numeric(self, columns: list[Any], rows: list[list[Any]]) -> Any | None:
        """Predict straight from JSON rows when the schema is all `double`: the float64 frame
        built here is exactly what MLflow's schema enforcement would hand the flavor. None
        when the rows need MLflow's general path (missing columns, non-numbers, ...)."""
        import numpy as np
        import pandas as pd

        names = self.numeric_columns
        if names is None or not rows or len(set(columns)) != len(columns):
            return None
        try:
            positions = [columns.index(name) for name in names]
        except ValueError:
            return None  # a missing column: MLflow's enforcement words the error
        for row in rows:
            for value in row:
                if type(value) is not float and type(value) is not int:
                    return None  # bool, None, strings: MLflow's rules apply
        matrix = np.array(rows, dtype=np.float64)
        if positions != list(range(len(columns))):
            matrix = matrix[:, positions]
        # Column-major, as the frame MLflow builds column by column: a flavor's BLAS call
        # then adds up in the same order, and the predictions are the same to the last bit.
        matrix = np.asfortranarray(matrix)
        frame = pd.DataFrame(matrix, columns=pd.Index(names, dtype=object), copy=False)
        return self.model._predict_fn(frame)

    def frame(self, columns: list[Any] | None, rows: list[Any]) -> Any:
        from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

        decoded = {"data": rows} if columns is None else {"columns": columns, "data": rows}
        return dataframe_from_parsed_json(decoded, "split", self.input_schema)

    def frame_from_records(self, records: list[dict[str, Any]]) -> Any:
        from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

        return dataframe_from_parsed_json(records, "records", self.input_schema)


def parse_request(body: bytes, content_type: str | None, model: ModelInput) -> ScoringInput:
    """Read one `/invocations` body; raise ScoringError for anything MLflow would refuse."""
    from mlflow.exceptions import MlflowException

    media = mime_type(content_type or "")
    try:
        if media == CONTENT_TYPE_JSON:
            return _parse_json(body, model)
        if media == CONTENT_TYPE_CSV:
            from io import StringIO

            from mlflow.pyfunc.scoring_server import parse_csv_input

            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ScoringError(
                    "BAD_REQUEST", f"Ensure that input is a valid UTF-8 encoded string. {error}"
                ) from None
            frame = parse_csv_input(StringIO(text), schema=model.input_schema)
            return _frame_input(frame)
        if media == CONTENT_TYPE_PARQUET:
            from io import BytesIO

            from mlflow.pyfunc.scoring_server import parse_parquet_input

            return _frame_input(parse_parquet_input(BytesIO(body)))
    except MlflowException as error:
        raise ScoringError.from_mlflow(error) from None
    raise ScoringError(
        "UNSUPPORTED_MEDIA_TYPE",
        f"This endpoint reads {', '.join(CONTENT_TYPES)}; got "
        f"{content_type or 'no content type'!r}. Send JSON with Content-Type: application/json.",
    )


@functools.lru_cache(maxsize=64)
def mime_type(content_type: str) -> str:
    """The media type of a Content-Type header, lower-cased; refuses what MLflow refuses."""
    parts = [part.strip() for part in content_type.split(";")]
    parameters = {key.lower(): value for key, _, value in (p.partition("=") for p in parts[1:])}
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        raise ScoringError("UNSUPPORTED_MEDIA_TYPE", "The scoring server only supports UTF-8.")
    unexpected = set(parameters) - {"charset"}
    if unexpected:
        raise ScoringError(
            "UNSUPPORTED_MEDIA_TYPE",
            f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}.",
        )
    return parts[0].lower()


def _frame_input(frame: Any) -> ScoringInput:
    return ScoringInput(n_rows=len(frame), merge_key=("frame", tuple(frame.columns)), data=frame)


# MLflow's words for a body that is not JSON, which clients match on (MLflow goes on to quote
# the whole body; we do not).
NOT_JSON = "Invalid input. Ensure that input is a valid JSON formatted string. Error: "


def _parse_json(body: bytes, model: ModelInput) -> ScoringInput:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # MLflow reads with json.loads, which also takes NaN and Infinity
            decoded = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise ScoringError("BAD_REQUEST", f"{NOT_JSON}{error!r}") from None
        except RecursionError:
            raise ScoringError("BAD_REQUEST", f"{NOT_JSON}it is nested too deeply.") from None
    if isinstance(decoded, dict) and not model.type_hint_signature and not model.tensor_schema:
        fast = _fast_json(decoded, model.input_schema)
        if fast is not None:
            return fast
    return _mlflow_json(body, decoded, model)


def _value_types(rows: list[Any], schema: Any) -> tuple[frozenset[type], ...] | None:
    """Part of the merge key for a model without a signature: pandas infers a column's dtype
    from all its values, so [[1]] merged with [[1.5]] would turn the first answer's 1 into
    1.0. With a schema every column is cast to its declared type, alone or merged."""
    if schema is not None:
        return None
    return tuple(frozenset(map(type, column)) for column in zip(*rows, strict=True))


def _fast_json(decoded: dict[str, Any], schema: Any) -> ScoringInput | None:
    """`dataframe_split` without an index, or `dataframe_records` whose records share their
    keys: rows that can join other requests' rows. None when the body is anything else."""
    formats = [key for key in decoded if key in SUPPORTED_FORMATS]
    if len(formats) != 1 or set(decoded) - {formats[0], "params"}:
        return None
    params = decoded.get("params")
    if params is not None and not isinstance(params, dict):
        return None
    params_key = orjson.dumps(params, option=orjson.OPT_SORT_KEYS) if params else b""
    payload = decoded[formats[0]]
    if formats[0] == DF_SPLIT:
        if not isinstance(payload, dict) or set(payload) - {"columns", "data"}:
            return None
        rows, columns = payload.get("data"), payload.get("columns")
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            return None
        if not isinstance(columns, list) or any(len(row) != len(columns) for row in rows):
            return None
        key = ("split", tuple(map(str, columns)), params_key, _value_types(rows, schema))
        return ScoringInput(len(rows), params, key if rows else None, columns=columns, rows=rows)
    if formats[0] == DF_RECORDS:
        if not isinstance(payload, list) or not payload:
            return None
        if not all(isinstance(record, dict) for record in payload):
            return None
        keys = tuple(payload[0])
        if any(tuple(record) != keys for record in payload):
            return None
        types = _value_types([list(record.values()) for record in payload], schema)
        return ScoringInput(
            len(payload), params, ("records", keys, params_key, types), records=payload
        )
    return None


def _mlflow_json(body: bytes, decoded: Any, model: ModelInput) -> ScoringInput:
    from mlflow.pyfunc.scoring_server import _parse_json_data

    if not isinstance(decoded, dict):
        kind = "a list" if isinstance(decoded, list) else f"a {type(decoded).__name__}"
        raise ScoringError(
            "BAD_REQUEST",
            "The body must be a JSON object with one of the keys "
            f"{', '.join(SUPPORTED_FORMATS)} (and optionally 'params'); got {kind}.",
        )
    parsed = _parse_json_data(json.dumps(decoded), model.metadata, model.input_schema)
    if parsed.is_unified_llm_input:
        # MLflow hands the model the params it split from the body: {} when there are none.
        return ScoringInput(n_rows=1, params=parsed.params, data=parsed.data, unwrapped=True)
    data = parsed.data
    n_rows = len(data) if hasattr(data, "__len__") else 1
    return ScoringInput(n_rows=n_rows, params=parsed.params, data=data)


def predictions_body(predictions: Any, *, unwrapped: bool = False) -> bytes:
    """`{"predictions": ...}` as MLflow writes it (DataFrames as records); the bare value for
    an LLM-style request, as MLflow answers those."""
    from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

    jsonable = _get_jsonable_obj(predictions, pandas_orient="records")
    document = jsonable if unwrapped else {"predictions": jsonable}
    body = orjson.dumps(
        document,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        default=_json_default,
    )
    if b"null" in body:
        # orjson writes NaN and Infinity as null; MLflow (and its clients) use the NaN and
        # Infinity literals. Rare, so the slow exact path is fine here.
        return json.dumps(document, cls=NumpyEncoder).encode()
    return body


def _json_default(value: Any) -> Any:
    from mlflow.utils.proto_json_utils import NumpyEncoder

    if hasattr(value, "isoformat"):
        return value.isoformat()
    return NumpyEncoder().default(value)
