"""The `sagemaker` batch engine: a SageMaker batch transform job scores s3:// input into an
s3:// output with the model's image.

The image is the one every target uses (built here, pushed to ECR once per model folder), run
in transform mode (`scoring.transform`): SageMaker splits the objects into lines and sends
mini-batches of as many records as fit in a payload; the container answers one line per
line, and SageMaker joins each answer to its input line (all input columns kept, the
prediction last) or writes the predictions alone (`--keep-columns ''`). CSV objects have no
header row (SageMaker's convention; a first line equal to the column names is skipped), their
columns in the signature's order; JSON Lines objects hold one record per line.

The run follows DescribeTransformJob to the end; Cancel stops the job; the SageMaker model
made for it is deleted whatever the outcome. The role and instances come from
$SPARKSERVE_SAGEMAKER_ROLE, $SPARKSERVE_SAGEMAKER_INSTANCE_TYPE and
$SPARKSERVE_TRANSFORM_INSTANCE_COUNT.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from time import perf_counter
from typing import Any

from ..errors import InvalidInput, SparkserveError
from ..plugins import Availability
from ..scoring.batch import BatchProgress, BatchResult, ProgressCallback
from ..scoring.engines import UriBatchEngine, UriRun
from ..scoring.transform import CONTENT_TYPE_JSON_LINES, MAX_PAYLOAD_MB, TRANSFORM_ENV
from . import aws
from .follow import JobState, follow
from .sagemaker import (
    DEFAULT_INSTANCE_TYPE,
    INSTANCE_TYPE_ENV,
    ROLE_ENV,
    gone,
    refused,
    resource_name,
    role_from_env,
)

INSTANCE_COUNT_ENV = "SPARKSERVE_TRANSFORM_INSTANCE_COUNT"
CONTENT_TYPES = {"csv": "text/csv", "jsonl": CONTENT_TYPE_JSON_LINES}
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
COUNTED_BYTES = 64 * 1024 * 1024  # outputs up to this size have their lines counted


class TransformFailed(SparkserveError):
    code = "TRANSFORM_FAILED"
    http_status = 502


class SageMakerTransformEngine(UriBatchEngine):
    name = "sagemaker"
    title = "SageMaker batch transform (s3:// in and out)"
    uri_schemes = ("s3",)

    def check(self) -> Availability:
        found = aws.credentials()
        if not found.usable:
            return found
        if not os.environ.get(ROLE_ENV, "").strip():
            return Availability(False, f"{found.detail} Set ${ROLE_ENV}: the role jobs run as.")
        return Availability(True, f"{found.detail} Reads and writes s3:// URIs.")

    def score_uris(
        self,
        model_path: Path,
        run: UriRun,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        started = perf_counter()
        cancel = cancel or threading.Event()
        role = role_from_env()
        join = _join_source(run)
        s3 = aws.client("s3")
        objects = _listed(s3, run.input, "input")
        if not objects:
            raise InvalidInput(f"No object under {run.input}: upload the input there first.")
        fmt = run.input_format or _EXTENSIONS.get(Path(objects[0]["Key"]).suffix.lower(), "csv")
        if fmt not in CONTENT_TYPES:
            raise InvalidInput(
                f"A transform job reads CSV or JSON Lines split into lines, not {fmt}: "
                "convert the input, or score it with another engine."
            )
        image = _model_image(model_path)
        sagemaker = aws.client("sagemaker")
        name = resource_name("sparkserve-transform", run.writer_tag)
        environment = {TRANSFORM_ENV: "1"}
        try:
            sagemaker.create_model(
                ModelName=name,
                PrimaryContainer={"Image": image, "Environment": environment},
                ExecutionRoleArn=role,
            )
        except Exception as error:
            raise TransformFailed(refused("the model", error)) from error
        try:
            _create_job(sagemaker, name, run, CONTENT_TYPES[fmt], join, environment)
            _follow(sagemaker, name, cancel, progress)
        finally:
            try:
                sagemaker.delete_model(ModelName=name)
            except Exception as error:
                if not gone(error):
                    raise
        rows, files = _count_output(s3, run.output)
        if progress is not None:
            progress(BatchProgress(rows, rows, 0, 0, files, max(files, 1), complete=True))
        return BatchResult(run.output, rows, len(objects), [run.prediction_column],
                           perf_counter() - started)  # fmt: skip


def _join_source(run: UriRun) -> str:
    """Every input column kept (SageMaker joins the prediction to its line) or none."""
    if run.prediction_column != "prediction":
        raise InvalidInput(
            "A transform job writes the prediction after the input columns, unnamed: leave the "
            "prediction column out."
        )
    if run.keep_columns is None:
        return "Input"
    if run.keep_columns == []:
        return "None"
    raise InvalidInput(
        "A transform job keeps every input column or none (--keep-columns ''), not some."
    )


def _model_image(model_path: Path) -> str:
    """The model folder's image in ECR (built and pushed once; later pushes send nothing)."""
    from ..containers.images import model_folder_image

    image = model_folder_image(model_path)
    return aws.push_to_ecr(
        image.tag, "sparkserve/batch", image.key, region=None, log=lambda _: None
    )


def _create_job(
    sagemaker: Any, name: str, run: UriRun, content_type: str, join: str, environment: dict
) -> None:
    try:
        sagemaker.create_transform_job(
            TransformJobName=name,
            ModelName=name,
            BatchStrategy="MultiRecord",
            MaxPayloadInMB=MAX_PAYLOAD_MB,
            Environment=environment,
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": run.input}},
                "ContentType": content_type,
                "SplitType": "Line",
                "CompressionType": "None",
            },
            TransformOutput={
                "S3OutputPath": run.output,
                "Accept": content_type,
                "AssembleWith": "Line",
            },
            TransformResources={
                "InstanceType": os.environ.get(INSTANCE_TYPE_ENV) or DEFAULT_INSTANCE_TYPE,
                "InstanceCount": int(os.environ.get(INSTANCE_COUNT_ENV) or 1),
            },
            DataProcessing={"JoinSource": join},
        )
    except Exception as error:
        raise TransformFailed(refused("the transform job", error)) from error


def _follow(
    sagemaker: Any, name: str, cancel: threading.Event, progress: ProgressCallback | None
) -> None:
    """DescribeTransformJob until it ends; Cancel stops the job."""

    def state() -> JobState:
        described = sagemaker.describe_transform_job(TransformJobName=name)
        status = described["TransformJobStatus"]
        reason = described.get("FailureReason") or "SageMaker gave no reason"
        return JobState(
            ended=status in ("Completed", "Failed", "Stopped"),
            succeeded=status == "Completed",
            stopped=status == "Stopped",
            failure=reason,
        )

    follow(
        state,
        lambda: sagemaker.stop_transform_job(TransformJobName=name),
        f"the transform job {name}",
        failed=TransformFailed,
        cancel=cancel,
        progress=progress,
    )


def _listed(s3: Any, uri: str, what: str) -> list[dict[str, Any]]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    try:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    except Exception as error:
        raise InvalidInput(f"Cannot list the {what} {uri}: {aws.said(error)}") from error
    return [item for item in listing.get("Contents", []) if not item["Key"].endswith("/")]


def _count_output(s3: Any, uri: str) -> tuple[int, int]:
    """(lines, objects) written under `uri`; lines counted when the output is small."""
    bucket, _, _prefix = uri.removeprefix("s3://").partition("/")
    objects = [item for item in _listed(s3, uri, "output") if item["Key"].endswith(".out")]
    if sum(item["Size"] for item in objects) > COUNTED_BYTES:
        return 0, len(objects)
    lines = 0
    for item in objects:
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        lines += len(body.splitlines())
    return lines, len(objects)
