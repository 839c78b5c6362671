"""The local batch engine: score files, folders or globs of CSV, Parquet or JSON Lines.

It streams with bounded memory: a reader thread parses record batches (pyarrow, which parses
CSV blocks on its own threads), the calling thread predicts, a writer thread encodes and
writes, and bounded queues between them keep at most a few batches in flight whatever the
input size. Kept input columns go from the input batch to the output batch as Arrow arrays,
never through pandas; only the model's own columns become a DataFrame.

Everything that can be checked before scoring is checked by `plan_run` (files exist and are
readable, one format, the model's columns present with usable types, the output writable),
with messages naming the file and the column. Output goes to a hidden temporary sibling of
the target and is renamed into place at the end, so a failed or cancelled run leaves nothing
behind (and `remove_partial_outputs` cleans up after a killed one).
"""

from __future__ import annotations

import glob
import itertools
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ARROW_POOL_ENV, DEFAULT_ARROW_POOL
from ..errors import InvalidInput, SparkserveError

FORMATS = ("csv", "parquet", "jsonl")
EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
OUTPUT_EXTENSION = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}
PARTIAL_MARKER = ".sparkserve-partial-"
PREVIOUS_MARKER = ".sparkserve-previous-"  # an output being replaced, until the swap is done
# Written into every output folder: only a folder holding it (or an empty one) is replaced.
FOLDER_MARKER = ".sparkserve-output"
# CSV and JSON bytes per parsed block. pyarrow's streaming reader keeps several blocks in
# flight, each several times its text size once parsed: 1 MB blocks hold the reader near
# 40 MB and were also the fastest here (per-batch overhead is a few hundred microseconds).
CSV_BLOCK_BYTES = 1 << 20
CSV_THREADS = True
BATCH_ROWS = 131_072  # rows per batch for Parquet and for DataFrames
QUEUE_DEPTH = 2  # batches waiting between reader, predictor and writer


def use_returning_allocator() -> None:
    """Call at the start of a process that scores files, before pyarrow is imported.

    pyarrow's default allocator (mimalloc) keeps freed batch memory mapped for reuse;
    jemalloc hands it back, which kept the peak of a 2M-row run about 35 MB lower here
    (benchmarks/batch.py). An explicit ARROW_DEFAULT_MEMORY_POOL wins."""
    os.environ.setdefault(ARROW_POOL_ENV, DEFAULT_ARROW_POOL)


class Cancelled(SparkserveError):
    code = "CANCELLED"
    http_status = 409


ProgressCallback = Callable[["BatchProgress"], None]


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str
    size: int


@dataclass(frozen=True)
class Plan:
    """A run checked before any scoring: what to read, what to write, which columns."""

    inputs: list[InputFile]
    output: Path
    output_format: str
    output_is_folder: bool
    keep_columns: list[str] | None  # None: every input column
    prediction_column: str
    # pyarrow types the model's input signature asks for, by column: CSV is parsed to them
    column_types: dict[str, Any] = field(default_factory=dict)
    # Names this run's temporary output, so that cleaning up after it (a job killed) never
    # touches another run writing the same output.
    writer_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass(frozen=True)
class BatchProgress:
    rows_done: int
    rows_total: int | None
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int

    @property
    def fraction(self) -> float | None:
        if self.rows_total:
            return min(1.0, self.rows_done / self.rows_total)
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}

    @classmethod
    def finished(cls, plan: Plan, rows: int) -> BatchProgress:
        """The last report of a run over `plan` that scored `rows` rows."""
        size, files = sum(item.size for item in plan.inputs), len(plan.inputs)
        return cls(rows, rows, size, size, files, files)


@dataclass(frozen=True)
class BatchResult:
    output: Path
    rows: int
    files: int
    prediction_columns: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output": str(self.output)}


# ------------------------------------------------------------------------------ planning


def plan_run(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    input_format: str | None = None,
    output_format: str | None = None,
    keep_columns: Sequence[str] | None = None,
    prediction_column: str = "prediction",
    input_schema: Any = None,
    writer_tag: str | None = None,
) -> Plan:
    """Check a run before it starts; raise InvalidInput naming the file and column at fault.

    `input` is a file, a folder (its data files, sorted) or a glob pattern. `output` is a
    file when its extension is a known one (several inputs are then concatenated into it),
    otherwise a folder with one output file per input. `input_schema` is the model's MLflow
    input schema, when it has one.
    """
    for label, value in (("input format", input_format), ("output format", output_format)):
        if value is not None and value not in FORMATS:
            raise InvalidInput(f"Unknown {label} {value!r}: use one of {', '.join(FORMATS)}.")
    if not prediction_column or not prediction_column.strip():
        raise InvalidInput("The prediction column needs a name.")
    inputs = discover_inputs(input, input_format)
    output_path = Path(output).expanduser().absolute()
    output_is_folder, out_format = _output_kind(output_path, output_format, inputs[0].format)
    input_paths = {item.path.resolve() for item in inputs}
    if output_path.resolve() in input_paths:
        raise InvalidInput(f"The output {output_path} is one of the inputs: choose another path.")
    if output_is_folder and any(output_path.resolve() in p.parents for p in input_paths):
        raise InvalidInput(
            f"The output folder {output_path} holds the inputs: choose a folder outside it."
        )
    parent = output_path.parent
    if not parent.is_dir():
        raise InvalidInput(f"Cannot write {output_path}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK):
        raise InvalidInput(f"Cannot write {output_path}: {parent} is not writable.")
    if output_path.exists() and output_path.is_dir() != output_is_folder:
        kind = "a folder" if output_path.is_dir() else "a file"
        raise InvalidInput(
            f"The output {output_path} exists and is {kind}; name a "
            f"{'folder' if output_is_folder else f'{out_format} file'} instead."
        )
    if (
        output_is_folder
        and output_path.is_dir()
        and not (output_path / FOLDER_MARKER).exists()
        and any(output_path.iterdir())
    ):
        raise InvalidInput(
            f"The output folder {output_path} holds files sparkserve did not write, and a run "
            "replaces its output folder whole: name a new or empty folder."
        )

    column_types = arrow_types_for(input_schema)
    required = required_columns(input_schema)
    keep = list(keep_columns) if keep_columns is not None else None
    for item in inputs:
        columns = _check_input(item, column_types)
        missing = [name for name in required if name not in columns]
        if missing:
            raise InvalidInput(
                f"{item.path} has no column {_names(missing)}, which the model needs "
                f"(it has {_names(columns)})."
            )
        if keep is not None:
            absent = [name for name in keep if name not in columns]
            if absent:
                raise InvalidInput(
                    f"Cannot keep column {_names(absent)}: {item.path} has no such column "
                    f"(it has {_names(columns)})."
                )
        kept = keep if keep is not None else columns
        if prediction_column in kept:
            raise InvalidInput(
                f"{item.path} already has a column {prediction_column!r}: choose another "
                "prediction column name, or leave that column out of the kept columns."
            )
    return Plan(
        inputs=inputs,
        output=output_path,
        output_format=out_format,
        output_is_folder=output_is_folder,
        keep_columns=keep,
        prediction_column=prediction_column,
        column_types=column_types,
        **({"writer_tag": writer_tag} if writer_tag else {}),
    )


def discover_inputs(input: str | os.PathLike[str], input_format: str | None) -> list[InputFile]:
    text = os.fspath(input)
    if not text:
        raise InvalidInput("No input given: name a file, a folder or a glob pattern.")
    path = Path(text).expanduser()
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.is_file() and _is_data_file(p))
        if not candidates:
            raise InvalidInput(
                f"The folder {path} has no CSV, Parquet or JSON Lines files "
                f"({', '.join(sorted(EXTENSIONS))})."
            )
    elif glob.has_magic(text):
        candidates = sorted(
            Path(p)
            for p in glob.glob(os.path.expanduser(text), recursive=True)
            if Path(p).is_file()
        )
        if not candidates:
            raise InvalidInput(f"No file matches {text}.")
    else:
        raise InvalidInput(f"The input {path} does not exist.")

    found: list[InputFile] = []
    for candidate in candidates:
        fmt = input_format or EXTENSIONS.get(candidate.suffix.lower())
        if fmt is None:
            raise InvalidInput(
                f"Cannot tell the format of {candidate} from its extension: give the input "
                f"format ({', '.join(FORMATS)})."
            )
        found.append(InputFile(candidate.absolute(), fmt, candidate.stat().st_size))
    formats = sorted({item.format for item in found})
    if len(formats) > 1:
        raise InvalidInput(
            f"The input mixes formats ({', '.join(formats)}): score one format at a time, or "
            "give the input format to read them all as one."
        )
    return found


def _is_data_file(path: Path) -> bool:
    return not path.name.startswith((".", "_")) and path.suffix.lower() in EXTENSIONS


def _output_kind(path: Path, output_format: str | None, input_format: str) -> tuple[bool, str]:
    """(is a folder, format) for an output path."""
    by_extension = EXTENSIONS.get(path.suffix.lower())
    if path.is_dir() or by_extension is None:
        return True, output_format or input_format
    return False, output_format or by_extension


def _output_names(inputs: Sequence[InputFile], output_format: str) -> list[str]:
    names: list[str] = []
    used: set[str] = set()
    for item in inputs:
        stem, candidate, n = item.path.stem, "", 1
        candidate = stem + OUTPUT_EXTENSION[output_format]
        while candidate in used:  # the same stem in two folders of a glob
            n += 1
            candidate = f"{stem}-{n}{OUTPUT_EXTENSION[output_format]}"
        used.add(candidate)
        names.append(candidate)
    return names


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


# The MLflow column types a file can be read as, and the Arrow types that satisfy them.
def arrow_types_for(input_schema: Any) -> dict[str, Any]:
    """Arrow types for the named, typed columns of an MLflow input schema."""
    import pyarrow as pa

    if input_schema is None or input_schema.is_tensor_spec() or not input_schema.has_input_names():
        return {}
    by_mlflow = {
        "double": pa.float64(),
        "float": pa.float32(),
        "long": pa.int64(),
        "integer": pa.int32(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "binary": pa.binary(),
    }
    types = {}
    for spec in input_schema.inputs:
        name = getattr(getattr(spec, "type", None), "name", None)
        if spec.name is not None and name in by_mlflow:
            types[spec.name] = by_mlflow[name]
    return types


def required_columns(input_schema: Any) -> list[str]:
    if input_schema is None or input_schema.is_tensor_spec() or not input_schema.has_input_names():
        return []
    return [spec.name for spec in input_schema.inputs if spec.required]


def _compatible(found: Any, wanted: Any) -> bool:
    import pyarrow.types as t

    if found == wanted or t.is_null(found):
        return True
    if t.is_floating(wanted):
        return t.is_integer(found) or t.is_floating(found)
    if t.is_integer(wanted):
        return t.is_integer(found)
    if t.is_string(wanted):
        return t.is_string(found) or t.is_large_string(found)
    return False


def _check_input(item: InputFile, column_types: dict[str, Any]) -> list[str]:
    """The file's column names; raise if it cannot be read or a model column has a type the
    model cannot take. CSV and JSON Lines are parsed on their first megabyte, which finds
    unparseable values early without starting a streaming reader for every file."""
    try:
        schema = leading_schema(item, column_types)
    except Exception as error:
        raise read_error(error, item) from None
    for name, wanted in column_types.items():
        index = schema.get_field_index(name)
        if index >= 0 and not _compatible(schema.field(index).type, wanted):
            raise InvalidInput(
                f"{item.path}, column {name!r}: the model takes {wanted}, the file has "
                f"{schema.field(index).type}."
            )
    return list(schema.names)


# -------------------------------------------------------------------------------- reading


@contextmanager
def _open_batches(
    item: InputFile, column_types: dict[str, Any]
) -> Iterator[tuple[Any, Iterator[Any]]]:
    """(Arrow schema, iterator of record batches, bytes read so far) for one input file."""
    import pyarrow as pa

    if item.format == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(item.path)
        try:
            yield parquet.schema_arrow, parquet.iter_batches(batch_size=BATCH_ROWS), lambda: 0
        finally:
            parquet.close()
        return

    source = pa.OSFile(str(item.path))
    try:
        if item.format == "csv":
            import pyarrow.csv as csv

            header = _csv_header(item.path)
            reader = csv.open_csv(
                source,
                read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=CSV_THREADS),
                convert_options=csv.ConvertOptions(
                    column_types={k: v for k, v in column_types.items() if k in header}
                ),
            )
        else:
            import pyarrow.json as pj

            reader = pj.open_json(
                source,
                read_options=pj.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=pj.ParseOptions(
                    explicit_schema=None,
                    unexpected_field_behavior="infer",
                ),
            )
        yield reader.schema, iter(reader), source.tell
    finally:
        source.close()


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return next(csv.reader(handle), [])


def leading_schema(item: InputFile, column_types: dict[str, Any]) -> Any:
    import pyarrow as pa

    if item.format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(item.path)
    with open(item.path, "rb") as handle:
        head = handle.read(CSV_BLOCK_BYTES)
    whole = len(head) < CSV_BLOCK_BYTES
    if not whole:
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        if item.format == "csv":
            import pyarrow.csv as csv

            header = _csv_header(item.path)
            return csv.read_csv(
                pa.BufferReader(head),
                read_options=csv.ReadOptions(use_threads=False),
                convert_options=csv.ConvertOptions(
                    column_types={k: v for k, v in column_types.items() if k in header}
                ),
            ).schema
        import pyarrow.json as pj

        return pj.read_json(pa.BufferReader(head)).schema
    except pa.ArrowInvalid:
        if whole:
            raise
    # The cut may have split a quoted field: let the streaming reader parse its first block.
    with _open_batches(item, column_types) as (schema, batches, _tell):
        next(batches, None)
        return schema


_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


def read_error(error: Exception, item: InputFile) -> InvalidInput:
    """An Arrow parse error, said with the file and the column's name."""
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    if item.format == "csv":
        found = _CSV_COLUMN.search(message)
        if found:
            header = _csv_header(item.path)
            index = int(found.group(1))
            if index < len(header):
                message = message.replace(found.group(0), f"column {header[index]!r}")
    return InvalidInput(f"Cannot read {item.path}: {message}")


# ------------------------------------------------------------------------------ predicting


class BatchModel:
    """A loaded pyfunc model that scores Arrow batches and DataFrames."""

    def __init__(self, pyfunc_model: Any) -> None:
        from .protocol import ModelInput

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


# -------------------------------------------------------------------------------- writing


def partial_path(output: Path, writer_tag: str) -> Path:
    """Where the run tagged `writer_tag` writes `output` until it is complete."""
    return output.parent / f".{output.name}{PARTIAL_MARKER}{writer_tag}"


def _previous_path(output: Path, writer_tag: str) -> Path:
    return output.parent / f".{output.name}{PREVIOUS_MARKER}{writer_tag}"


def remove_partial_outputs(output: str | os.PathLike[str], writer_tag: str) -> list[Path]:
    """Clean up after the run tagged `writer_tag` writing `output`, killed part-way: remove
    its temporary output, and put back the output it was replacing if the swap was cut
    short. Other runs' files are left alone. Returns what was removed."""
    target = Path(output).expanduser().absolute()
    removed = []
    partial = partial_path(target, writer_tag)
    if partial.exists() or partial.is_symlink():
        _remove(partial)
        removed.append(partial)
    previous = _previous_path(target, writer_tag)
    if previous.exists():
        if target.exists():
            _remove(previous)  # the swap was done: the old output was only not yet removed
        else:
            previous.rename(target)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            path.unlink()


@contextmanager
def atomic_output(plan: Plan) -> Iterator[Path]:
    """A temporary path (a folder when the output is one) renamed onto the output on success
    and removed on any error or cancellation."""
    temp = partial_path(plan.output, plan.writer_tag)
    if plan.output_is_folder:
        temp.mkdir()
    try:
        yield temp
        if plan.output_is_folder:
            (temp / FOLDER_MARKER).write_text(
                "Written by jupyter_sparkserve: the next run writing here replaces this folder.\n"
            )
        _replace(temp, plan.output, plan.writer_tag)
    except BaseException:
        _remove(temp)
        raise


def _replace(temp: Path, output: Path, writer_tag: str) -> None:
    if temp.is_dir() and output.is_dir():
        # Folders cannot be renamed over non-empty ones: swap, then drop the old one. A run
        # killed between the two renames is undone by remove_partial_outputs.
        previous = _previous_path(output, writer_tag)
        output.rename(previous)
        try:
            temp.rename(output)
        except BaseException:
            previous.rename(output)
            raise
        shutil.rmtree(previous, ignore_errors=True)
    else:
        os.replace(temp, output)


class _Writer:
    """Writes Arrow tables to one file of the plan's format."""

    def __init__(self, path: Path, output_format: str) -> None:
        self.path = path
        self.format = output_format
        self._writer: Any = None
        self._schema: Any = None
        self._handle: Any = None

    def write(self, table: Any) -> None:
        if self._schema is None:
            self._open(table)
        elif table.schema != self._schema:
            table = _conform(table, self._schema, self.path)
        if self.format == "jsonl":
            self._handle.write(_jsonl_bytes(table))
        else:
            self._writer.write_table(table)

    def _open(self, table: Any) -> None:
        schema = self._schema = table.schema
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(
                str(self.path), schema, use_dictionary=_dictionary_columns(table)
            )
        elif self.format == "csv":
            import pyarrow.csv as csv

            self._writer = csv.CSVWriter(str(self.path), schema)
        else:
            self._handle = open(self.path, "wb")  # noqa: SIM115 (closed in close())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._handle is not None:
            self._handle.close()


def _dictionary_columns(table: Any) -> bool | list[str]:
    """Parquet's `use_dictionary` for a file, judged on its first table.

    pyarrow dictionary-encodes every column, and only gives up on a column chunk once its
    dictionary passes 1 MB, which a batch's row group of distinct numbers rarely does:
    hashing every value then costs the writer more than all else, for a larger file (2M
    rows x 10 random doubles: 1.3 s and 196 MB to write, 0.4 s and 161 MB without). So a
    column of numbers goes without one when, as parquet-mr (Spark's writer) also checks, the
    dictionary and its indices would take more room than the plain values. Other columns
    keep the default, and so does every column when one is nested (set by leaf path)."""
    import pyarrow.compute as pc
    import pyarrow.types as t

    def plain(column: Any) -> bool:
        if not (t.is_integer(column.type) or t.is_floating(column.type)) or not len(column):
            return False
        distinct = pc.count_distinct(column, mode="all").as_py()
        index_bits = max(distinct - 1, 1).bit_length()
        width = column.type.bit_width
        return distinct * width + len(column) * index_bits >= len(column) * width

    names = table.schema.names
    without = {name for name, column in zip(names, table.columns, strict=True) if plain(column)}
    if not without or any(t.is_nested(field.type) for field in table.schema):
        return True
    return [name for name in names if name not in without]


def _conform(table: Any, schema: Any, path: Path) -> Any:
    if table.schema.names != schema.names:
        raise InvalidInput(
            f"The inputs going into {path.name} have different columns "
            f"({_names(schema.names)} then {_names(table.schema.names)}): write to a folder "
            "instead, one output per input."
        )
    try:
        return table.cast(schema)
    except Exception as error:
        raise InvalidInput(
            f"The inputs going into {path.name} have different column types ({error}): "
            "write to a folder instead, one output per input."
        ) from None


def _jsonl_bytes(table: Any) -> bytes:
    import orjson

    columns = table.to_pydict()
    names = list(columns)
    rows = zip(*(columns[name] for name in names), strict=True)
    return b"".join(
        orjson.dumps(dict(zip(names, row, strict=True)), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        for row in rows
    )


# -------------------------------------------------------------------------------- running

_DONE = object()


class _Stop(Exception):
    """Raised inside the reader when the run is over early."""


def run(
    model: BatchModel,
    plan: Plan,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> BatchResult:
    """Score every input of `plan` with `model` and write the output atomically."""
    import pyarrow as pa

    started = time.perf_counter()
    cancel = cancel or threading.Event()
    stop = threading.Event()  # the run is over (error or cancel): threads leave
    rows_total = known_rows(plan)
    bytes_total = sum(item.size for item in plan.inputs)
    names = _output_names(plan.inputs, plan.output_format)
    to_score: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    to_write: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    errors: list[BaseException] = []
    sizes_before = [0, *itertools.accumulate(item.size for item in plan.inputs)]

    def put(target: queue.Queue[Any], item: Any) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            for index, item in enumerate(plan.inputs):
                try:
                    with _open_batches(item, plan.column_types) as (schema, batches, tell):
                        for batch in batches:
                            put(to_score, (index, batch, tell()))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
                    raise read_error(error, item) from None
                put(to_score, (index, None, schema))  # this file is done
            put(to_score, _DONE)
        except _Stop:
            pass
        except BaseException as error:
            errors.append(error)
            stop.set()

    def write(temp: Path) -> None:
        writer: _Writer | None = None
        current = -1
        try:
            while True:
                try:
                    item = to_write.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if item is _DONE:
                    break
                index, table = item
                if index != current:
                    if writer is not None and plan.output_is_folder:
                        writer.close()
                        writer = None
                    if writer is None:
                        path = temp / names[index] if plan.output_is_folder else temp
                        writer = _Writer(path, plan.output_format)
                    current = index
                if table is not None:
                    writer.write(table)
            if writer is not None:
                writer.close()
                writer = None
        except BaseException as error:
            errors.append(error)
            stop.set()
        finally:
            if writer is not None:
                with suppress(Exception):
                    writer.close()

    rows_done = rows_in_file = 0
    output_names: list[str] = []
    last_report = 0.0
    with atomic_output(plan) as temp:
        reader = threading.Thread(target=read, name="sparkserve-batch-read", daemon=True)
        writer = threading.Thread(target=write, args=(temp,), name="sparkserve-batch-write")
        reader.start()
        writer.start()
        try:
            while True:
                if cancel.is_set():
                    raise Cancelled("The run was cancelled; no output was written.")
                if errors:
                    raise errors[0]
                try:
                    item = to_score.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    put(to_write, _DONE)
                    break
                index, batch, position = item
                if batch is None:  # the end of a file, whose schema comes as `position`
                    last = index == len(plan.inputs) - 1
                    if rows_in_file == 0 and (plan.output_is_folder or (last and not rows_done)):
                        # No rows: still a valid (empty) file with the columns it would have.
                        put(to_write, (index, _empty_output(plan, position)))
                    put(to_write, (index, None))
                    rows_in_file = 0
                    continue
                try:
                    table = _score_batch(model, plan, batch)
                except InvalidInput as error:
                    raise InvalidInput(f"{plan.inputs[index].path}: {error.message}") from None
                if not output_names:
                    output_names = [
                        n for n in table.schema.names if n not in set(batch.schema.names)
                    ] or [plan.prediction_column]
                put(to_write, (index, table))
                rows_done += batch.num_rows
                rows_in_file += batch.num_rows
                now = time.monotonic()
                if progress is not None and now - last_report > 0.2:
                    last_report = now
                    progress(
                        BatchProgress(
                            rows_done,
                            rows_total,
                            sizes_before[index] + position,
                            bytes_total,
                            index,
                            len(plan.inputs),
                        )
                    )
            writer.join()
            if errors:
                raise errors[0]
        except _Stop:  # a queue was closed because the reader or the writer failed
            raise errors[0] if errors else Cancelled("The run was stopped.") from None
        except BaseException:
            stop.set()
            raise
        finally:
            stop.set()
            reader.join()
            writer.join()
    if progress is not None:
        progress(BatchProgress.finished(plan, rows_done))
    return BatchResult(
        output=plan.output,
        rows=rows_done,
        files=len(plan.inputs),
        prediction_columns=output_names,
        seconds=time.perf_counter() - started,
    )


def _score_batch(model: BatchModel, plan: Plan, batch: Any) -> Any:
    import pyarrow as pa

    predictions = model.predict_batch(batch)
    columns = prediction_columns(predictions, batch.num_rows, plan.prediction_column)
    kept = plan.keep_columns if plan.keep_columns is not None else batch.schema.names
    arrays = [batch.column(name) for name in kept]
    for values in columns.values():
        arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, names=[*kept, *columns])


def known_rows(plan: Plan) -> int | None:
    """The rows to score when every input says (Parquet metadata), else None."""
    if any(item.format != "parquet" for item in plan.inputs):
        return None
    import pyarrow.parquet as pq

    total = 0
    for item in plan.inputs:
        try:
            total += pq.read_metadata(item.path).num_rows
        except (OSError, ValueError) as error:  # gone or changed since the plan was made
            raise read_error(error, item) from None
    return total


def _empty_output(plan: Plan, schema: Any) -> Any:
    import pyarrow as pa

    kept = plan.keep_columns if plan.keep_columns is not None else schema.names
    fields = [schema.field(name) for name in kept]
    return pa.Table.from_batches(
        [], pa.schema([*fields, pa.field(plan.prediction_column, pa.float64())])
    )
