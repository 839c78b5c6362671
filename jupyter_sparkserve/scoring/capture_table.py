"""Captured requests (one row each, bodies as sent: `capture.py`) read into one row per input
row: the input columns as sent, then `__request_id`, `__time`, `__latency_ms`, `__status`
and the predictions as answered. Done by whoever reads a capture, never by the endpoint.

Read without the model: a `dataframe_split` or `dataframe_records` body, `instances` or
`inputs` given as records or as columns, CSV and Parquet bodies become columns; any other
input (a tensor, an LLM-style body) is kept whole as its JSON in `__input`, one row. The
answer's `predictions` are cut one per row (`__prediction`, or `__prediction.KEY` when the
model answers records); an answer that cannot be cut is kept whole on each of its rows; a
failed request's predictions are empty.
"""

from __future__ import annotations

import io
import json
from typing import Any

import orjson

META_COLUMNS = ("__request_id", "__time", "__latency_ms", "__status")
PREDICTION = "__prediction"
INPUT_TEXT = "__input"
TABLE_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def rows_of(requests: Any) -> Any:
    """The pyarrow table of captured requests (None: none) as a DataFrame of input rows."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if requests is None or requests.num_rows == 0:
        return pd.DataFrame({name: [] for name in (*META_COLUMNS, PREDICTION)})
    column = requests.column
    frames, counts = _inputs(column("__body").to_pylist(), column("__content_type").to_pylist())
    ids = [
        f"{run}-{n}"
        for run, n in zip(
            column("__run").to_pylist(), column("__sequence").to_pylist(), strict=True
        )
    ]
    times = np.repeat(column("__time").cast(pa.int64()).to_numpy(), counts)
    statuses = column("__status").to_pylist()
    meta = pd.DataFrame(
        {
            "__request_id": np.repeat(np.array(ids, dtype=object), counts),
            "__time": pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize("UTC"),
            "__latency_ms": np.repeat(column("__latency_ms").to_numpy(), counts),
            "__status": np.repeat(np.array(statuses, dtype=np.int64), counts),
        }
    )
    predictions = _predictions(column("__answer").to_pylist(), statuses, counts)
    inputs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return pd.concat([inputs, meta, pd.DataFrame(predictions)], axis=1, copy=False)


def _inputs(bodies: list[bytes], kinds: list[str | None]) -> tuple[list[Any], list[int]]:
    """The requests' input frames and each one's row count. Consecutive `dataframe_split`
    bodies with the same columns make one frame (thousands of one-row frames otherwise)."""
    import pandas as pd

    frames: list[Any] = []
    counts: list[int] = []
    pending: list[Any] = []  # rows of consecutive split bodies with `pending_columns`
    pending_columns: Any = None

    def flush() -> None:
        if pending:
            frames.append(_split_frame(pending, pending_columns))
            pending.clear()

    for body, kind in zip(bodies, kinds, strict=True):
        document = _json(body) if _media(kind) == "application/json" else None
        split = _plain_split(document)
        if split is not None:
            columns, rows = split
            if columns != pending_columns:
                flush()
                pending_columns = columns
            pending.extend(rows)
            counts.append(len(rows))
            continue
        flush()
        frame = _input_frame(body, kind, document)
        frames.append(frame.reset_index(drop=True))
        counts.append(len(frame))
    flush()
    return frames or [pd.DataFrame()], counts


def _media(kind: str | None) -> str:
    return (kind or "application/json").split(";")[0].strip().lower()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)  # NaN and Infinity literals, as the endpoint reads them


def _plain_split(document: Any) -> tuple[list[Any], list[list[Any]]] | None:
    """(columns, rows) of a `dataframe_split` body with named columns and rows of lists."""
    if not isinstance(document, dict) or len(document.keys() - {"params"}) != 1:
        return None
    payload = document.get("dataframe_split")
    if not isinstance(payload, dict) or payload.keys() != {"columns", "data"}:
        return None
    columns, rows = payload["columns"], payload["data"]
    if not isinstance(columns, list) or not isinstance(rows, list) or not rows:
        return None
    if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
        return None
    return columns, rows


def _split_frame(rows: list[list[Any]], columns: list[Any]) -> Any:
    import pandas as pd

    # Column by column: each keeps its own type, as the client sent it.
    data = dict(enumerate(map(list, zip(*rows, strict=True))))
    return pd.DataFrame(data).set_axis(pd.Index(columns), axis=1)


def _input_frame(body: bytes, kind: str | None, document: Any) -> Any:
    import pandas as pd

    media = _media(kind)
    if media == "text/csv":
        return pd.read_csv(io.BytesIO(body))
    if media == "application/vnd.apache.parquet":
        return pd.read_parquet(io.BytesIO(body))
    frame = _json_frame(document) if isinstance(document, dict) else None
    if frame is None:
        return pd.DataFrame({INPUT_TEXT: [body.decode("utf-8", "replace")]})
    return frame


def _json_frame(document: dict[str, Any]) -> Any:
    import pandas as pd

    keys = [key for key in TABLE_KEYS if key in document]
    if len(keys) != 1:
        return None
    payload = document[keys[0]]
    if keys[0] == "dataframe_split" and isinstance(payload, dict):
        rows = payload.get("data")
        if not isinstance(rows, list):
            return None
        columns = payload.get("columns")
        if not rows or not all(isinstance(row, list) for row in rows):
            return pd.DataFrame(columns=columns or []) if not rows else None
        return _split_frame(rows, columns or list(range(len(rows[0]))))
    if isinstance(payload, list) and payload and all(isinstance(row, dict) for row in payload):
        return pd.DataFrame.from_records(payload)
    if keys[0] != "dataframe_split" and isinstance(payload, dict):
        values = list(payload.values())
        if values and all(isinstance(v, list) and len(v) == len(values[0]) for v in values):
            return pd.DataFrame(payload)
    return None


def _predictions(answers: list[bytes], statuses: list[int], counts: list[int]) -> dict[str, Any]:
    rows: list[Any] = []
    keys: dict[str, None] = {}  # the records' keys, in order
    for answer, status, count in zip(answers, statuses, counts, strict=True):
        values: list[Any] = [None] * count
        if status == 200:
            document = _json(answer)
            found = document.get("predictions") if isinstance(document, dict) else None
            if isinstance(found, list) and len(found) == count:
                values = found
                for value in found:
                    if isinstance(value, dict):
                        keys.update(dict.fromkeys(value))
            else:
                values = [answer.decode("utf-8", "replace")] * count
        rows.extend(values)
    if not keys:
        return {PREDICTION: rows}
    return {
        f"{PREDICTION}.{key}": [row.get(key) if isinstance(row, dict) else None for row in rows]
        for key in keys
    }
