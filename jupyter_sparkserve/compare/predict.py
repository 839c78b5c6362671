"""Scoring the rows with one version now, in process (the cached batch-model loading) or
through its live endpoint when it is deployed, timing every batch or request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInput, NotFound
from ..repository import ModelRepository

BATCH_ROWS = 100  # rows per timed batch or request: a client's request, not a whole file
PREDICTION = "prediction"

VIA = ("auto", "process", "endpoint")


@dataclass(frozen=True)
class Predictions:
    """One version's answers for the rows (same index), and what each call took."""

    label: str  # what the report calls this side: a ref, or "primary" / "shadow"
    frame: pd.DataFrame  # one column per output (`prediction` for a single one)
    latency_ms: np.ndarray  # one value per batch or request
    via: str  # how it was scored, said in the report
    failures: int = 0
    through_endpoint: bool = False  # timed over HTTP (else in this process)


@dataclass(frozen=True)
class Version:
    """A version to compare: its ref and its model folder (for scoring and its example)."""

    ref: str
    path: Path


def version(repository: ModelRepository, ref: str) -> Version:
    try:
        found = repository.resolve(ref)
    except NotFound as error:
        raise InvalidInput(f"Cannot compare {ref}: {error.message}") from None
    return Version(found.ref, found.local_path())


def input_types(model: Version) -> dict[str, Any]:
    """The Arrow types the version's signature asks for (files are parsed to them)."""
    from ..scoring.batch import arrow_types_for, load_batch_model

    return arrow_types_for(load_batch_model(model.path).input_schema)


def check_columns(model: Version, rows: pd.DataFrame) -> None:
    from ..scoring.batch import load_batch_model, required_columns

    needed = required_columns(load_batch_model(model.path).input_schema)
    missing = [name for name in needed if name not in rows.columns]
    if missing:
        raise InvalidInput(
            f"The rows have no column {', '.join(map(repr, missing))}, which {model.ref} needs "
            f"(they have {', '.join(map(repr, map(str, rows.columns[:20])))})."
        )


def endpoint_of(repository: ModelRepository, ref: str) -> str | None:
    """The URL of a running deployment of `ref` that answers HTTP, if there is one."""
    from ..deploy.deployments import Deployments

    for deployment in Deployments(repository).list(active_only=True):
        if deployment.ref == ref and deployment.status == "running" and deployment.url:
            return deployment.url
    return None


def score(
    repository: ModelRepository,
    model: Version,
    rows: pd.DataFrame,
    *,
    via: str = "auto",
    batch_rows: int = BATCH_ROWS,
    token: str | None = None,
) -> Predictions:
    """The version's predictions for `rows`: through its endpoint when `via` is endpoint (or
    auto and it is deployed and running), else in this process."""
    if via not in VIA:
        raise InvalidInput(f"Score through {' or '.join(VIA)}, not {via!r}.")
    if batch_rows < 1:
        raise InvalidInput(f"Rows per batch must be 1 or more, not {batch_rows}.")
    check_columns(model, rows)
    url = None if via == "process" else endpoint_of(repository, model.ref)
    if via == "endpoint" and url is None:
        raise InvalidInput(
            f"{model.ref} has no running deployment to score through: deploy it, or compare "
            "in process."
        )
    if url is not None:
        return _at_endpoint(model.ref, url, rows, batch_rows, token)
    return _in_process(model, rows, batch_rows)


def _in_process(model: Version, rows: pd.DataFrame, batch_rows: int) -> Predictions:
    from ..scoring.batch import load_batch_model, prediction_frame

    scorer = load_batch_model(model.path)
    parts, latencies = [], []
    for start in range(0, max(len(rows), 1), batch_rows):
        chunk = rows.iloc[start : start + batch_rows]
        began = time.perf_counter()
        answer = scorer.predict_frame(chunk)
        latencies.append((time.perf_counter() - began) * 1000)
        parts.append(prediction_frame(answer, len(chunk), PREDICTION))
    frame = pd.concat(parts, ignore_index=True)
    frame.index = rows.index
    return Predictions(
        model.ref, frame, np.asarray(latencies), f"in process, batches of {batch_rows} rows"
    )


def _at_endpoint(
    ref: str, url: str, rows: pd.DataFrame, batch_rows: int, token: str | None
) -> Predictions:
    from ..scoring.client import score_at_endpoint

    # The client calls progress right after each request's answer: the time between two
    # calls is one request (one session, so no connection set-up after the first).
    latencies: list[float] = []
    last = time.perf_counter()

    def timed(done: int, total: int) -> None:
        nonlocal last
        now = time.perf_counter()
        latencies.append((now - last) * 1000)
        last = now

    scored = score_at_endpoint(
        url,
        rows,
        keep_columns=[],
        prediction_column=PREDICTION,
        token=token,
        progress=timed,
        chunk_rows=batch_rows,
    )
    return Predictions(
        ref,
        scored,
        np.asarray(latencies),
        f"endpoint {url}, requests of {batch_rows} rows",
        through_endpoint=True,
    )
