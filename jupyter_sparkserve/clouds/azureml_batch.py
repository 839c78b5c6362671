"""The `azureml` batch engine: an AzureML batch endpoint scores an azureml:// folder into an
azureml:// folder with the model's image.

AzureML's model batch deployments run its own batch driver and need a scoring script; a
custom image runs as a pipeline-component deployment instead: one command step in the image
(`python -m jupyter_sparkserve.containers score INPUT OUTPUT`, the same batch engine as
`sparkserve score`, with its default columns and formats by extension) on the compute cluster
$SPARKSERVE_AZUREML_COMPUTE. One batch endpoint (`sparkserve-batch`) holds one deployment
per model image, each made once; a run invokes it on the input folder and follows the job to
its end; Cancel cancels the job. OUTPUT/scored/ holds one scored file per input file.
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
from . import azure
from .follow import JobState, follow

COMPUTE_ENV = "SPARKSERVE_AZUREML_COMPUTE"
ENDPOINT = "sparkserve-batch"
# The scored files' folder inside the job's output folder: the score mode writes atomically
# next to its output, and only the mounted output folder is writable.
SCORED = "scored"
RUNNING = ("NotStarted", "Queued", "Preparing", "Provisioning", "Starting", "Running",
           "CancelRequested", "Finalizing", "Paused")  # fmt: skip


class BatchJobFailed(SparkserveError):
    code = "BATCH_JOB_FAILED"
    http_status = 502


class AzureMLBatchEngine(UriBatchEngine):
    name = "azureml"
    title = "AzureML batch endpoint (azureml:// in and out)"
    uri_schemes = ("azureml",)

    def check(self) -> Availability:
        found = azure.availability()
        if not found.usable:
            return found
        if not os.environ.get(COMPUTE_ENV, "").strip():
            return Availability(False, f"{found.detail} Set ${COMPUTE_ENV}: the cluster to run on.")
        return Availability(True, f"{found.detail} Reads and writes azureml:// folders.")

    def score_uris(
        self,
        model_path: Path,
        run: UriRun,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        from azure.ai.ml import Input, Output

        from ..containers.images import folder_key

        started = perf_counter()
        cancel = cancel or threading.Event()
        _check_settings(run)
        compute = os.environ.get(COMPUTE_ENV, "").strip()
        if not compute:
            raise InvalidInput(f"Set ${COMPUTE_ENV}: the compute cluster batch jobs run on.")
        workspace = azure.Workspace.from_options({})
        ml = workspace.client()
        key = folder_key(model_path)
        deployment = f"sparkserve-{key}"
        try:
            _ensure_endpoint(ml)
            if not _has_deployment(ml, deployment):
                image = _model_image(ml, workspace, model_path)
                _create_deployment(ml, deployment, image, key, compute)
            job = ml.batch_endpoints.invoke(
                endpoint_name=ENDPOINT,
                deployment_name=deployment,
                inputs={"input_data": Input(type="uri_folder", path=run.input)},
                outputs={"output_data": Output(type="uri_folder", path=run.output)},
            )
        except SparkserveError:
            raise
        except Exception as error:
            raise BatchJobFailed(f"AzureML refused the batch job: {azure.said(error)}") from error
        _follow(ml, job.name, cancel, progress)
        if progress is not None:
            progress(BatchProgress(0, None, 0, 0, 1, 1))
        scored = f"{run.output.rstrip('/')}/{SCORED}/"
        return BatchResult(scored, 0, 1, [run.prediction_column], perf_counter() - started)


def _check_settings(run: UriRun) -> None:
    """The deployed step scores with the defaults: every input column, `prediction`, the
    formats by extension."""
    if run.keep_columns is not None or run.prediction_column != "prediction":
        raise InvalidInput(
            "The azureml engine keeps every input column and names the prediction "
            "'prediction': leave --keep-columns and --prediction-column out."
        )
    if run.input_format is not None:
        raise InvalidInput("The azureml engine reads formats by extension: leave the format out.")


def _ensure_endpoint(ml: Any) -> None:
    from azure.ai.ml.entities import BatchEndpoint

    try:
        ml.batch_endpoints.get(ENDPOINT)
    except Exception as error:
        if not azure.not_found(error):
            raise
        description = "Scores with sparkserve's model images."
        ml.batch_endpoints.begin_create_or_update(
            BatchEndpoint(name=ENDPOINT, description=description)
        ).result()


def _has_deployment(ml: Any, name: str) -> bool:
    try:
        ml.batch_deployments.get(name=name, endpoint_name=ENDPOINT)
    except Exception as error:
        if azure.not_found(error):
            return False
        raise
    return True


def _model_image(ml: Any, workspace: azure.Workspace, model_path: Path) -> str:
    from ..containers.images import model_folder_image

    image = model_folder_image(model_path)
    return azure.push_to_workspace_registry(
        ml, workspace, image.tag, "sparkserve/batch", image.key, lambda _line: None
    )


def _create_deployment(ml: Any, name: str, image: str, key: str, compute: str) -> None:
    """A pipeline component of one command step in the image, deployed on the endpoint."""
    from azure.ai.ml import Input
    from azure.ai.ml.dsl import pipeline
    from azure.ai.ml.entities import (
        CommandComponent,
        Environment,
        PipelineComponentBatchDeployment,
    )

    step = CommandComponent(
        name=f"sparkserve_score_{key}",
        version="1",
        environment=Environment(image=image),
        inputs={"input_data": Input(type="uri_folder")},
        outputs={"output_data": {"type": "uri_folder"}},
        command=(
            "python -m jupyter_sparkserve.containers score "
            f"${{{{inputs.input_data}}}} ${{{{outputs.output_data}}}}/{SCORED}"
        ),
    )

    def scoring(input_data):  # type: ignore[no-untyped-def]
        node = step(input_data=input_data)
        return {"output_data": node.outputs.output_data}

    # The dsl reads the annotation as a class; this module's annotations are strings.
    scoring.__annotations__ = {"input_data": Input}
    component = ml.components.create_or_update(
        pipeline(name=f"sparkserve_batch_{key}", version="1")(scoring)
    )
    ml.batch_deployments.begin_create_or_update(
        PipelineComponentBatchDeployment(
            name=name,
            endpoint_name=ENDPOINT,
            component=component,
            settings={"default_compute": compute, "continue_on_step_failure": "false"},
        )
    ).result()


def _follow(ml: Any, job: str, cancel: threading.Event, progress: ProgressCallback | None) -> None:
    """The job's status until it ends; Cancel cancels it."""

    def state() -> JobState:
        found = ml.jobs.get(job)
        status = str(getattr(found.status, "value", found.status))
        return JobState(
            ended=status not in RUNNING,
            succeeded=status == "Completed",
            stopped=status == "Canceled",
            failure=f"it ended {status}; its logs are in the studio",
        )

    follow(
        state,
        lambda: ml.jobs.begin_cancel(job),
        f"the AzureML job {job}",
        failed=BatchJobFailed,
        cancel=cancel,
        progress=progress,
    )
