"""Offline scoring, one call for every face: files on the local engine or on Spark, and
DataFrames in-process.

The model is any reference (`NAME`, `NAME:VERSION`, `NAME@ALIAS`, an MLflow URI or folder);
the run is planned and checked (`batch.plan_run`) before either engine starts, so both
engines refuse the same bad inputs with the same messages.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..repository import ModelRef, ModelRepository
from . import batch
from .batch import BatchResult, ProgressCallback, load_batch_model


def score(
    model: str | ModelRef,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    engine: str = "local",
    input_format: str | None = None,
    output_format: str | None = None,
    keep_columns: Sequence[str] | None = None,
    prediction_column: str = "prediction",
    spark_config: dict[str, str] | None = None,
    lib_jars: Sequence[str] | None = None,
    repository: ModelRepository | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    writer_tag: str | None = None,
) -> BatchResult:
    """Score a file, folder or glob into an output file or folder; see `batch.plan_run`.
    `writer_tag` names the temporary output (a job passes its id, to clean up after itself)."""
    runner, model_path, planned = prepare(
        model,
        input,
        output,
        engine=engine,
        input_format=input_format,
        output_format=output_format,
        keep_columns=keep_columns,
        prediction_column=prediction_column,
        spark_config=spark_config,
        lib_jars=lib_jars,
        repository=repository,
        writer_tag=writer_tag,
    )
    if isinstance(planned, batch.Plan):
        return runner.score(
            model_path,
            planned,
            spark_config=spark_config,
            lib_jars=list(lib_jars or []),
            progress=progress,
            cancel=cancel,
        )
    return runner.score_uris(model_path, planned, progress=progress, cancel=cancel)


def prepare(
    model: str | ModelRef,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    engine: str = "local",
    input_format: str | None = None,
    output_format: str | None = None,
    keep_columns: Sequence[str] | None = None,
    prediction_column: str = "prediction",
    spark_config: dict[str, str] | None = None,
    lib_jars: Sequence[str] | None = None,
    repository: ModelRepository | None = None,
    writer_tag: str | None = None,
) -> tuple[Any, Path, Any]:
    """Everything `score` checks before an engine starts, with nothing written: the engine,
    the model, and the run's plan (files, columns, the output) or its URIs. Returns the
    engine, the model folder and the `batch.Plan` (or `UriRun`). A dialog's check calls it
    alone: what it refuses, the run would refuse."""
    from .engines import UriRun, check_spark_settings, check_uris, get_engine

    runner = get_engine(engine)
    check_spark_settings(engine, spark_config, lib_jars)
    repository = repository or ModelRepository()
    if check_uris(runner, os.fspath(input), os.fspath(output)):
        if output_format is not None and output_format != input_format:
            raise InvalidInput(
                f"The {engine} engine writes what it reads: leave the output format out.",
                field="output",
            )
        run = UriRun(
            os.fspath(input),
            os.fspath(output),
            input_format,
            None if keep_columns is None else list(keep_columns),
            prediction_column,
            writer_tag or uuid.uuid4().hex[:12],
        )
        return runner, repository.model_path(model), run
    model_path = repository.model_path(model)
    plan = batch.plan_run(
        input,
        output,
        input_format=input_format,
        output_format=output_format,
        keep_columns=keep_columns,
        prediction_column=prediction_column,
        input_schema=_input_schema(model_path),
        writer_tag=writer_tag,
    )
    return runner, model_path, plan


def score_dataframe(
    model: str | ModelRef,
    frame: Any,
    *,
    keep_columns: Sequence[str] | None = None,
    prediction_column: str = "prediction",
    repository: ModelRepository | None = None,
    progress: ProgressCallback | None = None,
) -> Any:
    """The frame's kept columns (default all) plus the prediction column(s), scored
    in-process in chunks so that `progress` can follow a large frame."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"Expected a pandas DataFrame, got {type(frame).__name__}.")
    kept = kept_columns(frame, keep_columns, prediction_column)
    repository = repository or ModelRepository()
    scorer = load_batch_model(repository.model_path(model))
    missing = [c for c in batch.required_columns(scorer.input_schema) if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"The DataFrame has no column {', '.join(map(repr, missing))}, which the model needs."
        )
    parts = []
    total = len(frame)
    for start in range(0, max(total, 1), batch.BATCH_ROWS):
        chunk = frame.iloc[start : start + batch.BATCH_ROWS]
        predictions = scorer.predict_frame(chunk)
        parts.append(batch.prediction_frame(predictions, len(chunk), prediction_column))
        if progress is not None:
            done = start + len(chunk)
            ended = done == total
            progress(batch.BatchProgress(done, total, 0, 0, int(ended), 1, complete=ended))
    predicted = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    predicted.index = frame.index
    return pd.concat([frame[kept], predicted], axis=1)


def kept_columns(
    frame: Any, keep_columns: Sequence[str] | None, prediction_column: str
) -> list[str]:
    """The frame's columns that go with the predictions (default all), checked: each exists,
    and none is named like the prediction column."""
    kept = list(frame.columns) if keep_columns is None else list(keep_columns)
    absent = [name for name in kept if name not in frame.columns]
    if absent:
        raise InvalidInput(f"The DataFrame has no column {', '.join(map(repr, absent))}.")
    if prediction_column in kept:
        raise InvalidInput(
            f"The DataFrame already has a column {prediction_column!r}: choose another "
            "prediction column name."
        )
    return kept


def _input_schema(model_path: Path) -> Any:
    from .batch.model import input_schema

    return input_schema(model_path)
