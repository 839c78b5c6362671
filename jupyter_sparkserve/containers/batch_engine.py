"""The `container` batch engine: the model's image scores a checked plan, with the inputs
mounted read-only, the output's folder mounted writable, and no network.

The plan is checked on this side (the same checks and messages as every engine) and handed
to the image's `score-plan` mode as JSON with the paths as the container sees them. The
container runs as the calling user, so the output belongs to them; it writes atomically in
the output's folder like the local engine. Cancel kills the container, whose temporary
output is then removed here.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from ..errors import Cancelled, SparkserveError
from ..plugins import Availability
from ..scoring.batch import BatchResult, Plan, ProgressCallback
from ..scoring.batch.writers import remove_partial_outputs
from ..scoring.engines import BatchEngine
from . import engine

PLAN_DIR = "/sparkserve-plan"
OUTPUT_DIR = "/sparkserve-output"


class ContainerScoringFailed(SparkserveError):
    code = "CONTAINER_SCORING_FAILED"
    http_status = 500


class ContainerEngine(BatchEngine):
    name = "container"
    title = "The model's image on a container engine"

    def check(self) -> Availability:
        return engine.availability()

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
        started = perf_counter()
        cancel = cancel or threading.Event()
        image = self._image(model_path)
        volumes, inputs = _input_mounts(plan)
        volumes[str(plan.output.parent)] = {"bind": OUTPUT_DIR, "mode": "rw"}
        with tempfile.TemporaryDirectory(prefix="sparkserve-plan-") as folder:
            document = {
                "inputs": inputs,
                "output": f"{OUTPUT_DIR}/{plan.output.name}",
                "output_format": plan.output_format,
                "output_is_folder": plan.output_is_folder,
                "keep_columns": plan.keep_columns,
                "prediction_column": plan.prediction_column,
                "writer_tag": plan.writer_tag,
            }
            (Path(folder) / "plan.json").write_text(json.dumps(document))
            os.chmod(folder, 0o755)
            volumes[folder] = {"bind": PLAN_DIR, "mode": "ro"}
            answer = _run(image, volumes, cancel, plan)
        return BatchResult.of_run(
            plan, int(answer["rows"]), list(answer["prediction_columns"]), started, progress
        )

    def _image(self, model_path: Path) -> str:
        from .images import model_folder_image

        return model_folder_image(model_path).tag


def _input_mounts(plan: Plan) -> tuple[dict[str, dict[str, str]], list[list[Any]]]:
    """Each input's folder, read-only, and the inputs as the container sees them."""
    folders: dict[str, str] = {}
    inputs = []
    for item in plan.inputs:
        folder = str(item.path.parent)
        mount = folders.setdefault(folder, f"/sparkserve-input/{len(folders)}")
        inputs.append([f"{mount}/{item.path.name}", item.format, item.size])
    return {folder: {"bind": mount, "mode": "ro"} for folder, mount in folders.items()}, inputs


def _run(
    image: str, volumes: dict[str, dict[str, str]], cancel: threading.Event, plan: Plan
) -> dict[str, Any]:
    import requests

    client = engine.client(timeout=3600)
    container = client.containers.run(
        image,
        command=["score-plan", f"{PLAN_DIR}/plan.json"],
        detach=True,
        volumes=volumes,
        network_mode="none",
        user=f"{os.getuid()}:{os.getgid()}",
    )
    try:
        while True:
            if cancel.is_set():
                container.kill()
                container.wait(timeout=30)
                remove_partial_outputs(plan.output, plan.writer_tag)
                raise Cancelled("Cancelled.")
            try:
                status = container.wait(timeout=1)
                break
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                continue
        log = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
        client.close()
    lines = [line for line in log.splitlines() if line.strip()]
    results = [line for line in lines if line.startswith('{"rows"')]
    if status.get("StatusCode") != 0 or not results:
        errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
        detail = errors[-1] if errors else "\n".join(lines[-15:])
        raise ContainerScoringFailed(f"Scoring in the container of {image} failed: {detail}")
    return json.loads(results[-1])
