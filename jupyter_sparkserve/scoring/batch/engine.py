"""The local engine's run: a reader thread parses record batches, the calling thread
predicts, a writer thread encodes and writes, and bounded queues between them keep at most
a few batches in flight whatever the input size. Kept input columns go from the input batch
to the output batch as Arrow arrays, never through pandas. Progress is reported by the
writer, on the rows it has written: the reader runs ahead, and so would its count."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from ...errors import Cancelled, InvalidInput
from .model import BatchModel, prediction_columns
from .plan import (
    BatchProgress,
    BatchResult,
    Plan,
    ProgressCallback,
    known_rows,
    output_file_names,
)
from .readers import open_batches, read_error
from .writers import Writer, atomic_output

QUEUE_DEPTH = 2  # batches waiting between reader, predictor and writer


PROGRESS_SECONDS = 0.2  # at most five progress reports a second


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
    names = output_file_names(plan.inputs, plan.output_format)
    to_score: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    to_write: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    errors: list[BaseException] = []
    sizes_before = [0, *itertools.accumulate(item.size for item in plan.inputs)]
    written = [0]  # rows the writer has written: what the run's result counts

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
                    with open_batches(item, plan.column_types) as (schema, batches):
                        for batch, position in batches:
                            put(to_score, (index, batch, position))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
                    raise read_error(error, item) from None
                put(to_score, (index, None, schema))  # this file is done
            put(to_score, _DONE)
        except _Stop:
            pass
        except BaseException as error:
            errors.append(error)
            stop.set()

    def report(index: int, position: int, files_done: int) -> None:
        if progress is None:
            return
        progress(
            BatchProgress(
                written[0],
                rows_total,
                sizes_before[index] + position,
                bytes_total,
                files_done,
                len(plan.inputs),
                time.perf_counter() - started,
            )
        )

    def write(temp: Path) -> None:
        writer: Writer | None = None
        current = -1
        last_report = 0.0
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
                index, table, position = item
                if index != current:
                    if writer is not None and plan.output_is_folder:
                        writer.close()
                        writer = None
                    if writer is None:
                        path = temp / names[index] if plan.output_is_folder else temp
                        writer = Writer(path, plan.output_format)
                    current = index
                if table is not None:
                    writer.write(table)
                    written[0] += table.num_rows
                now = time.monotonic()
                if now - last_report >= PROGRESS_SECONDS:
                    last_report = now
                    report(index, position, index + (table is None))
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
                        put(to_write, (index, _empty_output(plan, position), 0))
                    put(to_write, (index, None, plan.inputs[index].size))
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
                put(to_write, (index, table, position))
                rows_done += batch.num_rows
                rows_in_file += batch.num_rows
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
    return BatchResult.of_run(plan, written[0], output_names, started, progress)


def _score_batch(model: BatchModel, plan: Plan, batch: Any) -> Any:
    import pyarrow as pa

    predictions = model.predict_batch(batch)
    columns = prediction_columns(predictions, batch.num_rows, plan.prediction_column)
    kept = plan.keep_columns if plan.keep_columns is not None else batch.schema.names
    arrays = [batch.column(name) for name in kept]
    for values in columns.values():
        arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, names=[*kept, *columns])


def _empty_output(plan: Plan, schema: Any) -> Any:
    import pyarrow as pa

    kept = plan.keep_columns if plan.keep_columns is not None else schema.names
    fields = [schema.field(name) for name in kept]
    return pa.Table.from_batches(
        [], pa.schema([*fields, pa.field(plan.prediction_column, pa.float64())])
    )
