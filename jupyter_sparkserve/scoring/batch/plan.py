"""Planning a batch run: everything that can be checked before scoring is checked here
(files exist and are readable, one format, the model's columns present with usable types,
the output writable), with messages naming the file and the column. The `Plan` is what every
engine scores, and what it reports progress and results against."""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from time import perf_counter
from typing import Any

from ...config import ARROW_POOL_ENV, DEFAULT_ARROW_POOL
from ...errors import InvalidInput
from .readers import EXTENSIONS, FORMATS, InputFile, leading_schema, quoted_names, read_error
from .writers import FOLDER_MARKER

OUTPUT_EXTENSION = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}


def use_returning_allocator() -> None:
    """Call at the start of a process that scores files, before pyarrow is imported.

    pyarrow's default allocator (mimalloc) keeps freed batch memory mapped for reuse;
    jemalloc hands it back, which kept the peak of a 2M-row run about 35 MB lower here
    (benchmarks/batch.py). An explicit ARROW_DEFAULT_MEMORY_POOL wins."""
    os.environ.setdefault(ARROW_POOL_ENV, DEFAULT_ARROW_POOL)


ProgressCallback = Callable[["BatchProgress"], None]


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


# A run still writing never reports 100%, not even rounded to a whole percent: only the
# report sent once the output is in place does.
UNFINISHED_AT_MOST = 0.99


@dataclass(frozen=True)
class BatchProgress:
    """How far a run is, counted on what has been scored and written, not on what was read
    (readers run megabytes ahead of the model)."""

    rows_done: int  # rows scored and written
    rows_total: int | None  # when the input says (Parquet metadata)
    bytes_done: int  # input bytes up to the last row written (estimated for CSV and JSON)
    bytes_total: int
    files_done: int  # input files whose rows are all written
    files_total: int
    seconds: float | None = None  # since the run started
    complete: bool = False  # the output is in place: the one report that says 1.0

    @property
    def fraction(self) -> float | None:
        """The share done: rows of the known total, else input bytes; None when neither is
        known (an indeterminate bar)."""
        if self.complete:
            return 1.0
        share = self._share()
        return None if share is None else min(UNFINISHED_AT_MOST, share)

    def _share(self) -> float | None:
        if self.rows_total:
            return self.rows_done / self.rows_total
        if self.bytes_total:
            return self.bytes_done / self.bytes_total
        return None

    @property
    def rows_per_second(self) -> float | None:
        if not self.seconds or not self.rows_done:
            return None
        return self.rows_done / self.seconds

    @property
    def seconds_left(self) -> float | None:
        """Estimated from the rate so far; None until there is one to go by."""
        if self.complete:
            return 0.0
        rate, share = self.rows_per_second, self._share()
        if rate is None or share is None or self.seconds is None:
            return None
        if self.rows_total:
            return max(0.0, (self.rows_total - self.rows_done) / rate)
        return max(0.0, self.seconds * (1 - share) / share) if share > 0 else None

    @property
    def text(self) -> str:
        """How far it is, in words, for every face: rows, rows/s and time left."""
        running = not self.complete
        return self.describe(running=running, seconds_left=self.seconds_left if running else None)

    def describe(
        self, *, running: bool, seconds_left: float | None, elapsed: float | None = None
    ) -> str:
        """The text for a run that goes on (`running`) or ended, with `seconds_left` when
        there is an estimate and the time spent (`elapsed`) when given."""
        spent = "" if elapsed is None else f" in {elapsed:.1f} s"
        if running and not self.rows_done and self.fraction is None:
            return f"scoring{spent} (rows are counted at the end)"
        total = f" of {self.rows_total:,}" if self.rows_total and not self.complete else ""
        words = [f"{self.rows_done:,}{total} rows{spent}"]
        rate = self.rows_per_second
        if rate is not None:
            words.append(f"{rate:,.0f} rows/s" if rate >= 10 else f"{rate:.1f} rows/s")
        if running and seconds_left is not None:
            words.append(f"about {duration(seconds_left)} left")
        return ", ".join(words)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "fraction": self.fraction,
            "rows_per_second": self.rows_per_second,
            "seconds_left": self.seconds_left,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BatchProgress:
        """A report as `to_dict` recorded it (what is computed from it is computed again)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def finished(cls, plan: Plan, rows: int, seconds: float | None = None) -> BatchProgress:
        """The last report of a run over `plan` that scored `rows` rows, once its output is
        in place."""
        size, files = sum(item.size for item in plan.inputs), len(plan.inputs)
        return cls(rows, rows, size, size, files, files, seconds, complete=True)


def duration(seconds: float) -> str:
    """A time left, as a person says it: "8 s", "3 min", "1 h 5 min"."""
    whole = max(1, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{round(whole / 60)} min"
    hours, minutes = divmod(round(whole / 60), 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@dataclass(frozen=True)
class BatchResult:
    output: Path | str  # a URI for an engine that writes to one (s3://...)
    rows: int
    files: int
    prediction_columns: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output": str(self.output)}

    @classmethod
    def of_run(
        cls,
        plan: Plan,
        rows: int,
        prediction_columns: list[str],
        started: float,
        progress: ProgressCallback | None,
    ) -> BatchResult:
        """What an engine answers once it has written `plan`'s output: the last progress
        report goes out, and the result says what was done (`started`: perf_counter)."""
        seconds = perf_counter() - started
        if progress is not None:
            progress(BatchProgress.finished(plan, rows, seconds))
        return cls(plan.output, rows, len(plan.inputs), prediction_columns, seconds)


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
    with _about("input"):
        inputs = discover_inputs(input, input_format)
    output_path = Path(output).expanduser().absolute()
    with _about("output"):
        output_is_folder, out_format = _output_kind(output_path, output_format, inputs[0].format)
        _check_output(output_path, output_is_folder, out_format, inputs)
    column_types = arrow_types_for(input_schema)
    required = required_columns(input_schema)
    keep = list(keep_columns) if keep_columns is not None else None
    for item in inputs:
        with _about("input"):
            columns = _check_input(item, column_types)
        missing = [name for name in required if name not in columns]
        if missing:
            raise InvalidInput(
                f"{item.path} has no column {quoted_names(missing)}, which the model needs "
                f"(it has {quoted_names(columns)}).",
                field="input",
            )
        if keep is not None:
            absent = [name for name in keep if name not in columns]
            if absent:
                raise InvalidInput(
                    f"Cannot keep column {quoted_names(absent)}: {item.path} has no such column "
                    f"(it has {quoted_names(columns)}).",
                    field="keep_columns",
                )
        kept = keep if keep is not None else columns
        if prediction_column in kept:
            raise InvalidInput(
                f"{item.path} already has a column {prediction_column!r}: choose another "
                "prediction column name, or leave that column out of the kept columns.",
                field="prediction_column",
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


@contextmanager
def _about(field: str) -> Iterator[None]:
    """Name `field` as the one at fault in an InvalidInput raised inside (a dialog shows the
    message next to that field)."""
    try:
        yield
    except InvalidInput as error:
        error.field = error.field or field
        raise


def _check_output(
    output_path: Path, output_is_folder: bool, out_format: str, inputs: Sequence[InputFile]
) -> None:
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
    """(is a folder, format) for an output path: a file when its extension names a format,
    a folder when it has no extension (or is one already). Any other extension is refused:
    `out.xlsx` would otherwise become a folder of CSV files named like a spreadsheet."""
    by_extension = EXTENSIONS.get(path.suffix.lower())
    if path.is_dir() or (by_extension is None and not path.suffix):
        return True, output_format or input_format
    if by_extension is None:
        raise InvalidInput(
            f"The output {path.name} ends in {path.suffix}, which is not a format sparkserve "
            f"writes: name a .csv, .parquet or .jsonl file, or a folder without an extension "
            "(one output file per input)."
        )
    return False, output_format or by_extension


def output_file_names(inputs: Sequence[InputFile], output_format: str) -> list[str]:
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
