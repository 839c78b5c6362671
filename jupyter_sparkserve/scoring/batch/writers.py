"""Writing a run's output atomically: to a hidden temporary sibling renamed into place at
the end (a folder swapped in whole), cleaned up after a run killed part-way, in CSV, Parquet
or JSON Lines."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInput, NoSpaceForOutput
from ...files import uri_scheme
from .readers import quoted_names

if TYPE_CHECKING:
    from .plan import Plan


PARTIAL_MARKER = ".sparkserve-partial-"


PREVIOUS_MARKER = ".sparkserve-previous-"  # an output being replaced, until the swap is done


# Written into every output folder: only a folder holding it (or an empty one) is replaced.
FOLDER_MARKER = ".sparkserve-output"


def partial_path(output: Path, writer_tag: str) -> Path:
    """Where the run tagged `writer_tag` writes `output` until it is complete."""
    return output.parent / f".{output.name}{PARTIAL_MARKER}{writer_tag}"


def _previous_path(output: Path, writer_tag: str) -> Path:
    return output.parent / f".{output.name}{PREVIOUS_MARKER}{writer_tag}"


def remove_partial_outputs(output: str | os.PathLike[str], writer_tag: str) -> list[Path]:
    """Clean up after the run tagged `writer_tag` writing `output`, killed part-way: remove
    its temporary output, and put back the output it was replacing if the swap was cut
    short. Other runs' files are left alone. Returns what was removed (nothing for a URI:
    the engine that writes one cleans up after itself)."""
    if uri_scheme(os.fspath(output)):
        return []
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
    except OSError as error:
        _remove(temp)
        if not _out_of_space(error):
            raise
        raise NoSpaceForOutput(
            f"No space left for the output {plan.output}: the disk (or your quota there) is "
            "full. Free some space or choose an output on another disk; nothing was written "
            "and no partial file is left."
        ) from error
    except BaseException:
        _remove(temp)
        raise


# Arrow's writers raise OSError with the message but often without errno.
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _out_of_space(error: OSError) -> bool:
    text = str(error)
    return error.errno in _NO_SPACE_ERRNOS or any(
        os.strerror(number) in text for number in _NO_SPACE_ERRNOS
    )


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


class Writer:
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
            f"({quoted_names(schema.names)} then {quoted_names(table.schema.names)}): write to a "
            "folder instead, one output per input."
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
