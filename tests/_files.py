"""Data files for the offline scoring tests: a frame split into files of one format, and any
output (file or folder) read back as one frame."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def write_parts(frame: pd.DataFrame, folder: Path, fmt: str, parts: int = 3) -> Path:
    """`frame` split in order into `parts` files `part-N.{fmt}` (csv, parquet or jsonl)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // parts)
    for index in range(parts):
        part = frame.iloc[index * size : (index + 1) * size]
        path = folder / f"part-{index}.{fmt}"
        if fmt == "csv":
            part.to_csv(path, index=False)
        elif fmt == "parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_json(path, orient="records", lines=True)
    return folder


def read_any(path: Path) -> pd.DataFrame:
    """A scored file, or a folder of them in name order, as one frame (hidden files, such as
    the folder's marker, skipped as data readers skip them)."""
    if path.is_dir():
        parts = sorted(p for p in path.iterdir() if not p.name.startswith((".", "_")))
        return pd.concat([read_any(p) for p in parts], ignore_index=True)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll `condition` every 0.1 s; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def no_partial_outputs(output: Path) -> bool:
    """Whether no temporary output of any writer is left next to `output`."""
    return not [p for p in output.parent.iterdir() if ".sparkserve-partial-" in p.name]
