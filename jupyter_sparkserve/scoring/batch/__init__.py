"""Batch scoring of files, folders or globs of CSV, Parquet or JSON Lines, in four steps that
every engine shares or reuses:

- `plan`: check the run before it starts and describe it (`Plan`, progress, results);
- `readers`: read input files as Arrow record batches;
- `model`: score batches and DataFrames with a loaded pyfunc model;
- `writers`: write the output atomically in the plan's format;

and `engine`, the local engine's streaming run (bounded memory: reading, predicting and
writing overlap on separate threads). The Spark engine (`scoring.spark`) runs the same plan
with the same readers' schemas and the same model code on the driver.
"""

from ...errors import Cancelled
from .engine import run
from .model import BatchModel, load_batch_model, prediction_columns, prediction_frame
from .plan import (
    OUTPUT_EXTENSION,
    BatchProgress,
    BatchResult,
    Plan,
    ProgressCallback,
    arrow_types_for,
    discover_inputs,
    known_rows,
    plan_run,
    required_columns,
    use_returning_allocator,
)
from .readers import BATCH_ROWS, EXTENSIONS, FORMATS, InputFile, leading_schema, read_error
from .writers import atomic_output, partial_path, remove_partial_outputs

__all__ = [
    "BATCH_ROWS",
    "EXTENSIONS",
    "FORMATS",
    "OUTPUT_EXTENSION",
    "BatchModel",
    "BatchProgress",
    "BatchResult",
    "Cancelled",
    "InputFile",
    "Plan",
    "ProgressCallback",
    "arrow_types_for",
    "atomic_output",
    "discover_inputs",
    "known_rows",
    "leading_schema",
    "load_batch_model",
    "partial_path",
    "plan_run",
    "prediction_columns",
    "prediction_frame",
    "read_error",
    "remove_partial_outputs",
    "required_columns",
    "run",
    "use_returning_allocator",
]
