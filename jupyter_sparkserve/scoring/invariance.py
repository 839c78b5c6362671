"""Whether merging requests keeps every row's answer to the bit: a probe run at load time.

A model's answer for a row can depend on the other rows of its `predict` call. BLAS kernels
take a vector path for rows inside a block and a scalar path for the tail, so a regressor's
last bits change with a row's position and the call's size. MLflow scores each request on
its own; merged, a request's answer would then depend on whoever shared its batch. The probe
scores sample rows in requests of a few sizes, alone and merged in several arrangements,
through the very scorer that serves them. Only a model whose every request keeps its bytes
is merged; the others get one `predict` call per request (still one worker trip per batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .protocol import CONTENT_TYPE_JSON, ModelInput, parse_request
from .scorer import Scorer

PROBE_ROWS = 48
# Request sizes the probe cycles through: single rows (the common online case), sizes that
# straddle SIMD widths, and one larger than a BLAS block.
REQUEST_SIZES = (1, 1, 2, 3, 1, 5, 1, 7, 2, 1, 9, 4, 1, 11)


@dataclass(frozen=True)
class MergeVerdict:
    merge: bool
    reason: str


def probe(model_input: ModelInput, model_path: str, max_batch_rows: int) -> MergeVerdict:
    """Merge when the model's metadata says so, or when the probe finds no row whose bytes
    change with its batch mates; otherwise score each request on its own."""
    declared = (model_input.model.metadata.metadata or {}).get("sparkserve", {}).get("batching")
    if declared == "merge":
        return MergeVerdict(True, "the model's metadata says rows are independent")
    try:
        return _probe(model_input, model_path, max_batch_rows)
    except Exception as error:  # sample rows the model refuses say nothing about merging
        return MergeVerdict(False, f"the probe could not score sample rows: {error}")


def _probe(model_input: ModelInput, model_path: str, max_batch_rows: int) -> MergeVerdict:
    rows = _probe_frame(model_input, model_path)
    if rows is None:
        return MergeVerdict(False, "no input example or all-double signature to probe with")
    bodies = _request_bodies(rows)
    scorer = Scorer(model_input, merge=True)
    items = [parse_request(body, CONTENT_TYPE_JSON, model_input) for body in bodies]
    alone = [scorer.score([item])[0] for item in items]
    indexes = list(range(len(items)))
    arrangements = [indexes, indexes[::-1], indexes[1::2] + indexes[::2]]
    # One batch as large as the server builds: a call that size may take another BLAS path.
    filled, total = [], 0
    while total + items[len(filled) % len(items)].n_rows <= max_batch_rows:
        total += items[len(filled) % len(items)].n_rows
        filled.append(len(filled) % len(items))
    arrangements.append(filled)
    for arrangement in arrangements:
        merged = scorer.score([items[i] for i in arrangement])
        if any(outcome != alone[i] for i, outcome in zip(arrangement, merged, strict=True)):
            return MergeVerdict(False, "a row's prediction changed with the rows merged next to it")
    return MergeVerdict(True, "every probed row kept its bytes when merged")


def _probe_frame(model_input: ModelInput, model_path: str) -> pd.DataFrame | None:
    """PROBE_ROWS distinct rows the model accepts: its input example with the float columns
    scaled row by row, or random rows for an all-double signature."""
    rng = np.random.default_rng(0)
    example = _input_example(model_input, model_path)
    if example is not None and len(example) > 0:
        frame = example.iloc[np.arange(PROBE_ROWS) % len(example)].reset_index(drop=True)
        for column in frame.columns:
            if pd.api.types.is_float_dtype(frame[column]):
                frame[column] = frame[column] * rng.uniform(0.5, 1.5, PROBE_ROWS)
        return frame
    names = model_input.numeric_columns
    if names is None:
        return None
    return pd.DataFrame(rng.normal(size=(PROBE_ROWS, len(names))), columns=list(names))


def _input_example(model_input: ModelInput, model_path: str) -> pd.DataFrame | None:
    try:
        example = model_input.model.metadata.load_input_example(model_path)
    except Exception:  # an example MLflow cannot read back: probe without it
        return None
    return example if isinstance(example, pd.DataFrame) else None


def _request_bodies(frame: pd.DataFrame) -> list[bytes]:
    """`dataframe_split` bodies of REQUEST_SIZES rows each, as clients send them."""
    bodies, start, turn = [], 0, 0
    columns = [str(column) for column in frame.columns]
    while start < len(frame):
        size = REQUEST_SIZES[turn % len(REQUEST_SIZES)]
        rows = frame.iloc[start : start + size].to_numpy().tolist()
        bodies.append(_split_body(columns, rows))
        start, turn = start + size, turn + 1
    return bodies


def _split_body(columns: list[str], rows: list[list[Any]]) -> bytes:
    payload = {"dataframe_split": {"columns": columns, "data": rows}}
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
