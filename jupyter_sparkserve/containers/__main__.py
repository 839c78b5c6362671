"""The image's entrypoint: `serve` (the default), `score INPUT OUTPUT`, or `health`.

`serve` follows SageMaker's container contract (`docker run IMAGE serve`, port 8080 or
SAGEMAKER_BIND_TO_PORT, `/ping` and `/invocations`, the model at /opt/ml/model) and suits
AzureML's custom containers (liveness and readiness on `/ping`, scoring on `/invocations`).
It binds 0.0.0.0 (inside a container only the published port reaches it); SIGTERM lets the
requests in flight finish, then exits 0. Started for a SageMaker transform job
(SPARKSERVE_TRANSFORM=1), it also answers `/execution-parameters` and reads headerless CSV and
JSON Lines mini-batches (`scoring.transform`). `score` runs the same batch engine as
`sparkserve score` on mounted files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config import ENDPOINT_TOKEN_ENV
from .layout import MODEL_DIR, PORT

MODEL_DIR_ENV = "SPARKSERVE_MODEL_DIR"
WORKERS_ENV = "SPARKSERVE_WORKERS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkserve-image", description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    modes.add_parser("serve", help="Serve the model over MLflow's scoring protocol.")
    score = modes.add_parser("score", help="Score a mounted file, folder or glob.")
    score.add_argument("input")
    score.add_argument("output")
    score.add_argument("--input-format", choices=("csv", "parquet", "jsonl"))
    score.add_argument("--output-format", choices=("csv", "parquet", "jsonl"))
    score.add_argument("--keep-columns", help="Comma-separated input columns to keep.")
    score.add_argument("--prediction-column", default="prediction")
    modes.add_parser("health", help="Exit 0 when the endpoint answers /ping.")
    plan = modes.add_parser("score-plan", help="Run a plan the container engine checked.")
    plan.add_argument("plan", help="The plan as JSON, paths as this container sees them.")
    arguments = parser.parse_args(argv)
    model_dir = Path(os.environ.get(MODEL_DIR_ENV) or MODEL_DIR)
    if arguments.mode == "serve":
        return _serve(model_dir)
    if arguments.mode == "score":
        return _score(model_dir, arguments)
    if arguments.mode == "score-plan":
        return _score_plan(model_dir, Path(arguments.plan))
    return _health()


def _port() -> int:
    return int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or PORT)


def _serve(model_dir: Path) -> int:
    from ..scoring.endpoint_config import EndpointConfig
    from ..scoring.server import serve
    from ..scoring.transform import TRANSFORM_ENV

    workers = int(os.environ.get(WORKERS_ENV) or 1)
    token = os.environ.get(ENDPOINT_TOKEN_ENV) or None
    print(f"Serving {model_dir} on 0.0.0.0:{_port()} ({workers} worker(s))", file=sys.stderr)
    transform = os.environ.get(TRANSFORM_ENV, "").lower() in ("1", "true", "yes")
    # A deployment's settings (`deploy.local_target.endpoint_settings`) come as JSON.
    config = EndpointConfig(model_path=str(model_dir), transform=transform, workers=workers)
    serve(
        config.with_environment(os.environ),
        host="0.0.0.0",  # inside a container: only the published port reaches it
        port=_port(),
        workers=workers,
        token=token,
    )
    return 0


def _score(model_dir: Path, arguments: argparse.Namespace) -> int:
    from ..errors import SparkserveError
    from ..scoring import batch
    from ..scoring.batch.model import load_batch_model

    columns = arguments.keep_columns
    keep = [column.strip() for column in columns.split(",")] if columns else None
    try:
        model = load_batch_model(model_dir)
        plan = batch.plan_run(
            arguments.input,
            arguments.output,
            input_format=arguments.input_format,
            output_format=arguments.output_format,
            keep_columns=keep,
            prediction_column=arguments.prediction_column,
            input_schema=model.input_schema,
        )
        result = batch.run(model, plan)
    except SparkserveError as error:
        print(f"Error: {error.message}", file=sys.stderr)
        return 2
    print(f"Scored {result.rows} rows from {result.files} file(s) into {arguments.output}")
    return 0


def _score_plan(model_dir: Path, plan_file: Path) -> int:
    """Score a plan checked outside (scoring/engines: the `container` engine); the last line
    printed is the result as JSON."""
    import json

    from ..errors import SparkserveError
    from ..scoring import batch
    from ..scoring.batch.model import load_batch_model
    from ..scoring.batch.plan import Plan, arrow_types_for
    from ..scoring.batch.readers import InputFile

    document = json.loads(plan_file.read_text())
    try:
        model = load_batch_model(model_dir)
        plan = Plan(
            inputs=[InputFile(Path(path), kind, size) for path, kind, size in document["inputs"]],
            output=Path(document["output"]),
            output_format=document["output_format"],
            output_is_folder=document["output_is_folder"],
            keep_columns=document["keep_columns"],
            prediction_column=document["prediction_column"],
            column_types=arrow_types_for(model.input_schema),
            writer_tag=document["writer_tag"],
        )
        result = batch.run(model, plan)
    except SparkserveError as error:
        print(f"Error: {error.message}", file=sys.stderr)
        return 2
    answer = {"rows": result.rows, "files": result.files}
    print(json.dumps({**answer, "prediction_columns": result.prediction_columns}))
    return 0


def _health() -> int:
    import urllib.request  # here: `serve` starts without it

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{_port()}/ping", timeout=2) as answer:
            return 0 if answer.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
