"""SageMaker batch transform's requests, answered by the image's `serve` mode.

A transform job splits its S3 objects into lines and posts mini-batches of whole lines to
`/invocations`: a CSV mini-batch has no header (only an object's first one could), and a JSON
Lines one holds one record per line. The answer must have exactly one line per input line,
in order, so that SageMaker can assemble (and join) them. Only a container started for a
transform job (`TRANSFORM_ENV`, set by the `sagemaker` batch engine) reads bodies this way;
real-time endpoints keep MLflow's protocol exactly.
"""

from __future__ import annotations

import io
from typing import Any

import orjson

from .protocol import ModelInput, ScoringError, ScoringInput

TRANSFORM_ENV = "SPARKSERVE_TRANSFORM"
CONTENT_TYPE_JSON_LINES = "application/jsonlines"
MAX_PAYLOAD_MB = 6  # SageMaker's default, answered on /execution-parameters
EXECUTION_PARAMETERS_PATH = "/execution-parameters"


def execution_parameters(workers: int) -> bytes:
    """What SageMaker asks before it sends mini-batches: as many in flight as workers, as
    many records as fit in a payload."""
    return orjson.dumps(
        {
            "MaxConcurrentTransforms": max(1, workers),
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": MAX_PAYLOAD_MB,
        }
    )


def is_transform_body(mime_type: str) -> bool:
    return mime_type in ("text/csv", CONTENT_TYPE_JSON_LINES)


def parse_lines(body: bytes, mime_type: str, model: ModelInput) -> ScoringInput:
    """A mini-batch as a DataFrame: CSV lines in the signature's column order (a first line
    equal to the column names is taken as the object's header), or JSON records."""
    import pandas as pd

    columns = _signature_columns(model)
    if mime_type == CONTENT_TYPE_JSON_LINES:
        try:
            records = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        except orjson.JSONDecodeError as error:
            raise ScoringError("BAD_REQUEST", f"A line is not JSON: {error}") from None
        if not all(isinstance(record, dict) for record in records):
            raise ScoringError("BAD_REQUEST", "Each JSON line must be an object of columns.")
        frame = model.frame_from_records(records)
    else:
        lines = body.decode("utf-8", "replace").splitlines()
        if lines and columns and lines[0].strip().split(",") == columns:
            lines = lines[1:]
        if not columns:
            raise ScoringError(
                "BAD_REQUEST",
                "CSV lines without a header need the model's input signature (column names).",
            )
        text = "\n".join(line for line in lines if line.strip())
        raw = pd.read_csv(io.StringIO(text), header=None, names=columns) if text else None
        frame = model.frame(columns, raw.values.tolist() if raw is not None else [])
    return ScoringInput(n_rows=len(frame), merge_key=None, data=frame)


def answer_lines(body: bytes, mime_type: str) -> bytes:
    """`{"predictions": [...]}` as one line per prediction: CSV values, or JSON values."""
    predictions = orjson.loads(body)["predictions"]
    lines = []
    for value in predictions:
        if mime_type == CONTENT_TYPE_JSON_LINES:
            lines.append(orjson.dumps(value))
        elif isinstance(value, dict):
            lines.append(",".join(_csv_value(item) for item in value.values()).encode())
        elif isinstance(value, list):
            lines.append(",".join(_csv_value(item) for item in value).encode())
        else:
            lines.append(_csv_value(value).encode())
    return b"\n".join(lines) + b"\n"


def _csv_value(value: Any) -> str:
    text = "" if value is None else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def _signature_columns(model: ModelInput) -> list[str]:
    schema = model.input_schema
    if schema is None or not schema.has_input_names():
        return []
    return [str(name) for name in schema.input_names()]
