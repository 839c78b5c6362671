"""The Spark engine: the local engine's run (`batch.Plan`) scored with `mlflow.pyfunc.spark_udf`.

The output is meant to be the local engine's output, written by Spark: the same rows in the
same order, the same columns with the same types. So each input file is read with the schema
the local engine would read it with (the Arrow schema of its first block, model columns typed
by the signature), the files are unioned in input order (so a single output file keeps the
local engine's row order), and the prediction columns come from scoring a few rows on the
driver through the local engine's own code, which settles their names and types exactly.

On a cluster (`spark.master` not `local...`: `spark://`, `yarn`, `k8s://`), MLflow's
`spark_udf` ships the model to the executors as a zip through `SparkContext.addFile` (no
shared disk assumed for it), `spark.jars` through Spark's file server; the input and output
paths, though, are read and written by the executors, so they must be on a file system the
driver and every executor share. A session this run starts on a cluster is stopped at its
end, so the application finishes (and frees the cluster's cores) when the run does.

pyspark is an optional extra; nothing here imports it before a run starts.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, SparkserveError
from ..plugins import Availability
from . import batch
from .batch import BatchProgress, BatchResult, Cancelled, Plan, ProgressCallback
from .engines import BatchEngine

PROBE_ROWS = 16  # rows scored on the driver to learn the prediction columns
POLL_SECONDS = 0.5  # how often progress and cancellation are checked
_log = logging.getLogger(__name__)
_INSTALL_HINT = "The Spark engine needs pyspark: pip install 'jupyter_sparkserve[spark]'"
_JAVA_HINT = (
    "The Spark engine needs Java 17 or later: install a JDK and put java on PATH "
    "(or set JAVA_HOME)."
)


def spark_available() -> bool:
    """Whether pyspark is installed and a Java runtime can be found for it."""
    return importlib.util.find_spec("pyspark") is not None and _java() is not None


def _java() -> str | None:
    # PySpark starts $JAVA_HOME/bin/java when JAVA_HOME is set, else java from PATH.
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return str(Path(java_home, "bin", "java"))
    return shutil.which("java")


class SparkEngine(BatchEngine):
    """`mlflow.pyfunc.spark_udf` on `local[*]` or the master that `spark.master` names."""

    name = "spark"
    title = "Apache Spark"
    takes_spark_settings = True

    def check(self) -> Availability:
        if importlib.util.find_spec("pyspark") is None:
            return Availability(False, _INSTALL_HINT)
        if _java() is None:
            return Availability(False, _JAVA_HINT)
        return Availability(True, "pyspark and Java are installed.")

    def score(
        self,
        model_path: Path,
        plan: Plan,
        *,
        spark_config: Mapping[str, str] | None = None,
        lib_jars: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        return score_files(
            model_path,
            plan,
            spark_config=dict(spark_config or {}),
            lib_jars=list(lib_jars),
            progress=progress,
            cancel=cancel,
        )


def score_files(
    model_path: Path,
    plan: Plan,
    *,
    spark_config: dict[str, str] | None = None,
    lib_jars: list[str] | None = None,
    progress: Callable[[BatchProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> BatchResult:
    """Score every input of `plan` with the MLflow model at `model_path` on Spark and write
    the output atomically, like `batch.run` does on this machine."""
    if importlib.util.find_spec("pyspark") is None:
        raise InvalidInput(_INSTALL_HINT)
    if _java() is None:
        raise InvalidInput(_JAVA_HINT)
    started = time.perf_counter()
    cancel = cancel or threading.Event()
    started_here = _active_session() is None
    spark = _session(dict(spark_config or {}), list(lib_jars or []))
    context = spark.sparkContext
    cluster = not str(context.master).startswith("local")
    ui = f" (UI {context.uiWebUrl})" if context.uiWebUrl else ""
    _log.info("Spark application %s on %s%s", context.applicationId, context.master, ui)
    group = f"sparkserve-{uuid.uuid4().hex[:12]}"
    # Job groups are per thread (PySpark pins threads), so only this run's jobs get cancelled.
    context.setJobGroup(group, f"sparkserve: score {plan.output.name}", interruptOnCancel=True)
    try:
        with (
            _translate_errors(cancel, cluster),
            _watch(context, group, plan, progress, cancel),
            batch.atomic_output(plan) as temp,
        ):
            rows, prediction_columns = _score(spark, model_path, plan, temp)
            if cancel.is_set():  # Spark finished first: still a cancelled run, output dropped
                raise Cancelled("The run was cancelled; no output was written.")
    finally:
        if cluster and started_here:  # the application ends with the run
            spark.stop()
        else:
            for key in (
                "spark.jobGroup.id",
                "spark.job.description",
                "spark.job.interruptOnCancel",
            ):
                context.setLocalProperty(key, None)  # None removes it
    return BatchResult.of_run(plan, rows, prediction_columns, started, progress)


def _active_session() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def _session(config: dict[str, str], lib_jars: list[str]) -> Any:
    from pyspark.sql import SparkSession

    missing = [jar for jar in lib_jars if "://" not in jar and not Path(jar).expanduser().is_file()]
    if missing:
        raise InvalidInput(f"Cannot add jar {', '.join(map(repr, missing))}: no such file.")
    # Otherwise the Python workers start whichever python is first on PATH. PySpark reads
    # only the variable (spark-submit sets it from spark.pyspark.python): executors on other
    # hosts may need their own path.
    if config.get("spark.pyspark.python"):
        os.environ["PYSPARK_PYTHON"] = config["spark.pyspark.python"]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Spark's console progress bar would garble job logs and the CLI's own progress bar.
    config.setdefault("spark.ui.showConsoleProgress", "false")
    builder = SparkSession.builder.master(config.get("spark.master", "local[*]"))
    if "spark.app.name" not in config:
        builder = builder.appName("sparkserve")
    jars = [config.pop("spark.jars")] if config.get("spark.jars") else []
    jars += [str(Path(jar).expanduser()) if "://" not in jar else jar for jar in lib_jars]
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    for key, value in config.items():
        builder = builder.config(key, value)
    if SparkSession.getActiveSession() is not None and (jars or "spark.master" in config):
        _log.warning(
            "Spark is already running in this process: the master and jars given apply to a "
            "new Spark session only, this run uses the running one."
        )
    try:
        spark = builder.getOrCreate()
    except Exception as error:
        raise SparkserveError(f"Could not start Spark: {_short(error)}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _score(spark: Any, model_path: Path, plan: Plan, temp: Path) -> tuple[int, list[str]]:
    """Write the scored output into `temp`; return (rows, prediction column names)."""
    import mlflow.pyfunc
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from .batch import load_batch_model

    frame = functools.reduce(
        lambda left, right: left.unionByName(right),
        [_read(spark, item, plan) for item in plan.inputs],
    )
    model = load_batch_model(model_path)
    model_input = F.struct(*[_column(name) for name in model.model_columns or frame.columns])
    result_type, outputs = _prediction_layout(model, frame, plan.prediction_column)
    kept = plan.keep_columns if plan.keep_columns is not None else frame.columns
    if result_type is None:  # no rows: nothing to score, and no predictions to type
        predicted = F.lit(None).cast("double")
    else:
        # MLflow warns that env_manager="local" does not recreate the model's environment and
        # recommends conda: scoring in this environment is the point, so say nothing.
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_logger.level
        pyfunc_logger.setLevel(logging.ERROR)
        try:
            udf = mlflow.pyfunc.spark_udf(
                spark, str(model_path), env_manager="local", result_type=result_type
            )
        finally:
            pyfunc_logger.setLevel(level)
        predicted = udf(model_input)
    out = frame.select(*[_column(name) for name in kept], predicted.alias("__sparkserve_out"))
    scored = _column("__sparkserve_out")
    out = out.select(
        *[_column(name) for name in kept],
        *[scored if field is None else scored[field] for field in outputs.values()],
    ).toDF(*kept, *outputs)
    observation = Observation("sparkserve")
    out = out.observe(observation, F.count(F.lit(1)).alias("rows"))
    parts = _write(out, plan, temp)
    rows = int(observation.get["rows"])
    if rows and not parts:  # the executors committed their files on their own disks
        raise InvalidInput(f"Spark scored {rows:,} rows but {_UNSHARED_OUTPUT}")
    return rows, list(outputs)


def _read(spark: Any, item: batch.InputFile, plan: Plan) -> Any:
    reader = spark.read
    if item.format == "parquet":
        return reader.parquet(str(item.path))
    schema = _arrow_schema(item, plan)
    if item.format == "csv":
        # RFC 4180 quoting, as Arrow reads and writes it; a bad value fails like it does there.
        return reader.csv(str(item.path), schema=schema, header=True, escape='"', mode="FAILFAST")
    return reader.json(str(item.path), schema=schema, mode="FAILFAST")


def _arrow_schema(item: batch.InputFile, plan: Plan) -> Any:
    """The Spark schema for the Arrow schema the local engine reads `item` with."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StringType, StructField, StructType

    try:
        schema = batch.leading_schema(item, plan.column_types)
    except Exception as error:  # the file changed since the run was planned
        raise batch.read_error(error, item) from None
    fields = []
    for field in schema:
        # An all-null first block tells Arrow nothing; read such a column as text.
        kind = StringType() if pa.types.is_null(field.type) else from_arrow_type(field.type)
        fields.append(StructField(field.name, kind, nullable=True))
    return StructType(fields)


def _prediction_layout(model: Any, frame: Any, prediction_column: str) -> tuple[Any, dict]:
    """(the UDF's result type, output column name -> struct field or index, None for the
    value itself), decided by scoring the first rows the way the local engine does.

    `None` as result type means the input has no rows."""
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import ArrayType, StructField, StructType

    sample = frame.limit(PROBE_ROWS).toArrow()
    if sample.num_rows == 0:
        return None, {prediction_column: None}
    predictions = model.predict_batch(sample)
    columns = batch.prediction_columns(predictions, sample.num_rows, prediction_column)
    spark_types = {name: from_arrow_type(pa.array(values).type) for name, values in columns.items()}
    named = isinstance(predictions, pd.DataFrame | dict) or (
        isinstance(predictions, list) and bool(predictions) and isinstance(predictions[0], dict)
    )
    if len(columns) == 1:
        # spark_udf takes the first column of whatever the model returns.
        return next(iter(spark_types.values())), {next(iter(columns)): None}
    if named:
        struct = StructType([StructField(name, kind) for name, kind in spark_types.items()])
        return struct, {name: name for name in columns}
    # A 2-D array: one array per row, split into prediction_0, prediction_1, ...
    element = next(iter(spark_types.values()))
    return ArrayType(element), {name: index for index, name in enumerate(columns)}


def _column(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")  # names with dots stay whole


def _write(out: Any, plan: Plan, temp: Path) -> int:
    """Write `out` into `temp`; the number of data files this machine sees there."""
    if plan.output_is_folder:
        return _write_parts(out, plan.output_format, temp)
    # One task writes one part file, in partition (= input) order; it becomes the output file.
    work = temp.with_name(temp.name + "-spark")
    try:
        _write_parts(out.coalesce(1), plan.output_format, work)
        parts = sorted(work.glob("part-*"))
        if parts:
            os.replace(parts[0], temp)
        else:
            temp.touch()
        return len(parts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_parts(out: Any, output_format: str, folder: Path) -> int:
    writer = out.write.mode("overwrite")
    if output_format == "csv":
        writer.csv(str(folder), header=True, escape='"')
    elif output_format == "parquet":
        writer.parquet(str(folder))
    else:
        writer.json(str(folder), ignoreNullFields=False)  # nulls written, as the local engine does
    # Keep only the data files, named like the local engine's (by extension, in order).
    for leftover in [*folder.glob("_*"), *folder.glob(".*")]:
        leftover.unlink()
    extension = batch.OUTPUT_EXTENSION[output_format]
    parts = sorted(folder.glob("part-*"))
    for index, part in enumerate(parts):
        part.rename(folder / f"part-{index:05d}{extension}")
    return len(parts)


@contextmanager
def _watch(
    context: Any,
    group: str,
    plan: Plan,
    progress: Callable[[BatchProgress], None] | None,
    cancel: threading.Event,
) -> Iterator[None]:
    """Cancel the run's Spark jobs when `cancel` is set, and report progress until the block
    ends: indeterminate, since Spark counts tasks, not rows written, while a job runs (a
    share of tasks is no share of rows, and a run's later jobs add tasks)."""
    done = threading.Event()
    started = time.perf_counter()

    def poll() -> None:
        while not done.wait(POLL_SECONDS):
            if cancel.is_set():  # again and again: jobs may start after the first cancel
                context.cancelJobGroup(group)
                continue
            if progress is None:
                continue
            seconds = time.perf_counter() - started
            try:
                progress(BatchProgress(0, None, 0, 0, 0, len(plan.inputs), seconds))
            except Exception:  # e.g. the job's database write: keep watching for a cancel
                _log.warning("Reporting the Spark run's progress failed", exc_info=True)

    watcher = threading.Thread(target=poll, name="sparkserve-spark-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


@contextmanager
def _translate_errors(cancel: threading.Event, cluster: bool) -> Iterator[None]:
    """Spark's errors as one short line a user can act on, never a Java stack trace."""
    from py4j.protocol import Py4JError
    from pyspark.errors import AnalysisException, PySparkException, PythonException

    try:
        if cancel.is_set():
            raise Cancelled("The run was cancelled; no output was written.")
        yield
    except SparkserveError:
        raise
    except (PySparkException, Py4JError) as error:
        if cancel.is_set():
            raise Cancelled("The run was cancelled; no output was written.") from None
        message = _short(error)
        # The driver found the files when it planned the run: on a cluster, an executor that
        # cannot is one on another file system.
        if cluster and "FileNotFoundException" in message:
            missing = f"An executor cannot find a file: {message} ({_SHARED_FILES})"
            raise InvalidInput(missing) from None
        if isinstance(error, AnalysisException) or message.startswith(_INPUT_ERRORS):
            hint = f" ({_SHARED_FILES})" if cluster and "FAILED_READ_FILE" in message else ""
            raise InvalidInput(f"Spark cannot read the input: {message}{hint}") from None
        if cluster and "Cannot run program" in message:
            raise SparkserveError(f"Spark failed: {message} ({_EXECUTOR_PYTHON})") from None
        if isinstance(error, PythonException) or "Traceback" in str(error):
            raise SparkserveError(f"The model failed on Spark: {message}") from None
        raise SparkserveError(f"Spark failed: {message}") from None


_SHARED_FILES = (
    "on a cluster, the executors read the input and write the output at the same paths as "
    "this machine: put them on a file system the driver and every executor share"
)
_UNSHARED_OUTPUT = f"this machine sees none of their output files: {_SHARED_FILES}."
_EXECUTOR_PYTHON = (
    "the executors start this Python at the same path: install the same environment there, "
    "or name theirs with spark.pyspark.python in sparkConfig"
)
# Spark error classes that mean the input, not Spark or the model, is at fault.
_INPUT_ERRORS = ("[FAILED_READ_FILE", "[MALFORMED_RECORD", "[PATH_NOT_FOUND")
# The last "SomethingError: message" line of a Python traceback inside a Spark error.
_PYTHON_ERROR = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception): .+$", re.MULTILINE)
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+\s*$")
_STAGE_FAILURE = "Job aborted due to stage failure"


def _short(error: BaseException) -> str:
    """The line of a Spark error that says what went wrong (and its root cause, for Java)."""
    text = str(error)
    if "Traceback" in text:  # raised in a Python worker: the traceback's last error line
        python_errors = _PYTHON_ERROR.findall(text)
        if python_errors:
            return python_errors[-1].strip()
    java = getattr(error, "java_exception", None)
    if java is None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return _SQLSTATE.sub("", lines[0]) if lines else type(error).__name__
    # A Java exception: its chain of causes, outermost first, one line each.
    chain: list[str] = []
    while java is not None and len(chain) < 20:
        lines = str(java.getMessage() or "").strip().splitlines() or [""]
        chain.append(f"{java.getClass().getSimpleName()}: {_SQLSTATE.sub('', lines[0])}")
        java = java.getCause()
    useful = [line.split(": ", 1)[1] for line in chain if _STAGE_FAILURE not in line]
    first = useful[0] if useful else chain[0]
    return first if chain[-1].endswith(first) else f"{first} ({chain[-1]})"
