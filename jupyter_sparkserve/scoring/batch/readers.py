"""Reading input files as Arrow record batches: CSV, Parquet and JSON Lines, streamed in
blocks, model columns parsed to the types the model's signature asks for, and read errors
said with the file and the column's name."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InvalidInput

FORMATS = ("csv", "parquet", "jsonl")


EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


# CSV and JSON bytes per parsed block. pyarrow's streaming reader keeps several blocks in
# flight, each several times its text size once parsed: 1 MB blocks hold the reader near
# 40 MB and were also the fastest here (per-batch overhead is a few hundred microseconds).
CSV_BLOCK_BYTES = 1 << 20


CSV_THREADS = True


BATCH_ROWS = 131_072  # rows per batch for Parquet and for DataFrames


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str
    size: int


@contextmanager
def open_batches(
    item: InputFile, column_types: dict[str, Any]
) -> Iterator[tuple[Any, Iterator[tuple[Any, int]]]]:
    """(Arrow schema, iterator of (record batch, the input's bytes up to the batch's end))
    for one input file.

    The bytes are counted by batch, not asked of the file: Arrow's streaming readers read
    ahead (9 MB of an 11 MB CSV file before the first batch here), so the file's position
    says what was read, not what was parsed. A CSV or JSON batch is one block of
    CSV_BLOCK_BYTES cut at a row's end; a Parquet batch's share of the bytes is its share
    of the rows."""
    import pyarrow as pa

    if item.format == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(item.path)
        try:
            batches = parquet.iter_batches(batch_size=BATCH_ROWS)
            yield parquet.schema_arrow, _by_rows(batches, parquet.metadata.num_rows, item.size)
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
        yield reader.schema, _by_blocks(reader, item.size)
    finally:
        source.close()


def _by_blocks(batches: Iterator[Any], size: int) -> Iterator[tuple[Any, int]]:
    for count, batch in enumerate(batches, start=1):
        yield batch, min(size, count * CSV_BLOCK_BYTES)


def _by_rows(batches: Iterator[Any], rows: int, size: int) -> Iterator[tuple[Any, int]]:
    done = 0
    for batch in batches:
        done += batch.num_rows
        yield batch, size * done // rows if rows else size


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
    with open_batches(item, column_types) as (schema, batches):
        next(batches, None)
        return schema


_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


# What Arrow quotes of a file's contents in its errors, and what is said instead.
_CONTENT = (
    (re.compile(r"(got \d+)\s*:.*$"), r"\1"),  # CSV: "Expected 4 columns, got 1: <the row>"
    (re.compile(r"(invalid value)\s+'.*'"), r"\1"),  # a conversion: "invalid value '<it>'"
    (re.compile(r"(Invalid value)\..*$"), r"\1."),
)


def read_error(error: Exception, item: InputFile) -> InvalidInput:
    """An Arrow parse error, said with the file and the column's name, and never with the
    file's contents: Arrow quotes the row or value it choked on, which may be a secret."""
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    for quoted, said in _CONTENT:
        message = quoted.sub(said, message)
    if item.format == "csv":
        found = _CSV_COLUMN.search(message)
        if found:
            header = _csv_header(item.path)
            index = int(found.group(1))
            if index < len(header):
                message = message.replace(found.group(0), f"column {header[index]!r}")
    return InvalidInput(f"Cannot read {item.path}: {message}")


def quoted_names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")
