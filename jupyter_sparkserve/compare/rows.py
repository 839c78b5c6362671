"""The rows two versions are compared on: a file (or folder, or glob) read with the batch
readers, or the requests a deployment captured (`scoring.capture`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InvalidInput, NotFound, remedy
from ..repository import ModelRepository


@dataclass(frozen=True)
class Rows:
    """The input rows, and where they came from (said in the report)."""

    frame: pd.DataFrame
    source: str


def deployment_folder(repository: ModelRepository, deployment_id: str) -> Path:
    return repository.settings.home / "deployments" / deployment_id


def read_file_rows(input: str, column_types: dict[str, Any]) -> Rows:
    """Every row of a CSV, Parquet or JSON Lines file (or a folder or glob of them), the
    model's columns parsed to its signature's types; the index is the row's number (from 0)."""
    import pyarrow as pa

    from ..scoring import batch

    items = batch.discover_inputs(input, None)
    tables = []
    for item in items:
        try:
            with batch.readers.open_batches(item, column_types) as (schema, batches):
                parts = [part for part, _ in batches]
                tables.append(pa.Table.from_batches(parts, schema=schema))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise batch.read_error(error, item) from None
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise InvalidInput(f"The files of {input} do not share their columns: {error}") from None
    shown = str(items[0].path) if len(items) == 1 else f"{input} ({len(items)} files)"
    return Rows(table.to_pandas(), f"file {shown}")


def captured_rows(repository: ModelRepository, deployment_id: str) -> Rows:
    """The input columns of the rows a deployment captured (its other columns, the ones
    named `__...`, say how it answered)."""
    from ..deploy.local_target import CAPTURE_FOLDER
    from ..scoring.capture import read_captured

    folder = deployment_folder(repository, deployment_id) / CAPTURE_FOLDER
    if not folder.is_dir():
        raise InvalidInput(
            f"Deployment {deployment_id} captured no requests (no {folder}): deploy with "
            "capture on, send it traffic, then compare on it."
        )
    captured = read_captured(folder)
    inputs = [name for name in captured.columns if not str(name).startswith("__")]
    if captured.empty or not inputs:
        raise InvalidInput(f"Deployment {deployment_id} has captured no table rows to replay yet.")
    return Rows(captured[inputs].reset_index(drop=True), f"requests captured by {deployment_id}")


def rows_on(repository: ModelRepository, on: str, column_types: dict[str, Any]) -> Rows:
    """`--on`: a file, folder or glob of files, else the id of a deployment (its capture)."""
    if not on:
        raise InvalidInput("Nothing to compare on: give a file or a deployment id (--on).")
    path = Path(on).expanduser()
    if path.exists() or any(ch in on for ch in "*?[") or "/" in on or path.suffix:
        return read_file_rows(on, column_types)
    from ..deploy.deployments import Deployments

    try:
        Deployments(repository).get(on)
    except NotFound:
        raise InvalidInput(
            f"{on!r} is neither a file nor a deployment: give a CSV, Parquet or JSON file, or "
            "the id of a deployment whose captured requests to replay.",
            remedy=remedy("list_deployments"),
        ) from None
    return captured_rows(repository, on)
