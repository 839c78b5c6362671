"""IPython magics: the notebook face of the core (`%load_ext jupyter_sparkserve`).

They run in the kernel against the same SPARKSERVE_HOME as the Jupyter server, so what a magic
saves, deploys or scores shows in the sidebar. A magic parses its line, calls the core and
shows the answer; every user mistake becomes a UsageError that says what to type, never a
traceback.

    %sfsave OBJ NAME [-x EXAMPLE] [-d TEXT] [--tag K=V] [--metric K=V]
    %sfmodels [--filter TEXT] [--tag K[=V]] [--limit N]
    %sfscore REF DF [-o NAME] [--endpoint URL | --deployment ID] [--keep-columns A,B]
    %sfscore REF INPUT OUTPUT [--engine local|spark] [--keep-columns A,B]
    %sfdeploy REF [--target local] [--register] [--cells auto|bundle|next-input|print]
    %sfsnippets ID_OR_REF [--cells ...]
    %sfundeploy ID
    %sfjobs [--status STATUS] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from .. import cells
from ..config import ENDPOINT_TOKEN_ENV, Settings
from ..deploy.deployments import Deployment, Deployments
from ..deploy.mlflow import MlflowRegistry
from ..deploy.targets import TARGETS
from ..errors import Conflict, SparkserveError
from ..lifecycle import offline_snippets
from ..repository import ModelRepository
from ..repository.names import parse_key_values
from ..scoring.batch import BatchProgress
from ..scoring.offline import ENGINES, score_dataframe
from ..snippets import Snippet
from ..workflows import Job, JobRunner, WorkflowSpec
from ..workflows.definitions import split_list
from .endpoint import score_at_endpoint
from .output import Show, StatusLine, has_frontend, progress_bar, show_fields

__all__ = ["SparkserveMagics"]

PROGRESS_ROWS = 100_000  # a DataFrame larger than this gets a progress bar
CELLS_MODES = ("auto", "bundle", "next-input", "print")
SCORE_FILES = "%sfscore REF INPUT OUTPUT [--engine local|spark]"
SCORE_FRAME = "%sfscore REF DF [-o NAME] [--endpoint URL | --deployment ID]"


def _parse(magic: Any, line: str) -> argparse.Namespace:
    """Arguments split as a shell would (quotes group words), parsed by the magic's parser,
    which turns a mistake into a UsageError with the usage line."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise UsageError(f"Could not read the arguments ({error}): check the quotes.") from None
    return magic.parser.parse_args(words)


@contextmanager
def _usage_errors() -> Iterator[None]:
    """The core's messages are written for the user: shown as they are, without a traceback."""
    try:
        yield
    except SparkserveError as error:
        raise UsageError(error.message) from None


def _token() -> str | None:
    return os.environ.get(ENDPOINT_TOKEN_ENV) or None


@magics_class
class SparkserveMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._repository: ModelRepository | None = None

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            self._repository = ModelRepository(Settings.from_env())
        return self._repository

    def _variable(self, name: str, what: str) -> Any:
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(f"No variable named {name!r} in this notebook: pass the {what}.")
        return namespace[name]

    # ------------------------------------------------------------------ the repository

    @magic_arguments()
    @argument("model", help="Variable holding the trained model (scikit-learn, pyfunc, ...).")
    @argument("name", help="Model name in the repository; saving again makes a new version.")
    @argument("-d", "--description", default="", help="What this version is.")
    @argument("-x", "--input-example", help="Variable holding a few input rows (DataFrame).")
    @argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="Tag.")
    @argument("--metric", action="append", default=[], metavar="KEY=VALUE", help="Metric.")
    @argument("--flavor", help="MLflow flavor to save with, when it cannot be told.")
    @line_magic
    def sfsave(self, line: str) -> None:
        """Save a model variable to the repository: %sfsave model iris -x X_test."""
        args = _parse(self.sfsave, line)
        model = self._variable(args.model, "model to save")
        example = (
            self._variable(args.input_example, "input example") if args.input_example else None
        )
        with _usage_errors():
            version = self.repository.save(
                model,
                args.name,
                description=args.description,
                tags=parse_key_values(args.tag, "tag"),
                metrics=parse_key_values(args.metric, "metric"),
                input_example=example,
                flavor=args.flavor,
            )
        print(f"Saved {version.ref} ({version.flavor}) to {self.repository.settings.home}")

    @magic_arguments()
    @argument("--filter", dest="name_contains", help="Only names containing this text.")
    @argument("--tag", help="Only models with a version tagged KEY or KEY=VALUE.")
    @argument("--limit", type=int, default=50, help="How many models to show.")
    @line_magic
    def sfmodels(self, line: str) -> pd.DataFrame:
        """List the repository's models: %sfmodels --filter iris."""
        args = _parse(self.sfmodels, line)
        with _usage_errors():
            page = self.repository.list_models(
                name_contains=args.name_contains, tag=args.tag, limit=args.limit
            )
        rows = [model.to_dict() for model in page.items]
        columns = ["name", "latest_version", "version_count", "flavor", "aliases", "updated_at"]
        return pd.DataFrame(rows, columns=columns)

    # ------------------------------------------------------------------------- scoring

    @magic_arguments()
    @argument("model", metavar="REF", help="The model: NAME, NAME:VERSION, NAME@ALIAS, a URI.")
    @argument(
        "data",
        metavar="DF_OR_INPUT",
        help="A DataFrame variable; or, followed by OUTPUT, a file, folder or glob to score.",
    )
    @argument(
        "output",
        metavar="OUTPUT",
        nargs="?",
        help="Where to write scored files (CSV, Parquet, JSON Lines): scores INPUT as a job.",
    )
    @argument("-o", dest="variable", metavar="NAME", help="Also store the scored DataFrame here.")
    @argument("--endpoint", metavar="URL", help="Score the DataFrame through this endpoint.")
    @argument("--deployment", metavar="ID", help="Score the DataFrame through this deployment.")
    @argument(
        "--keep-columns", metavar="A,B", help="Input columns kept (default all, '' for none)."
    )
    @argument(
        "--prediction-column", metavar="NAME", default="prediction", help="The output column."
    )
    @argument("--engine", choices=ENGINES, help="Files only: local (default) or spark.")
    @line_magic
    def sfscore(self, line: str) -> pd.DataFrame | None:
        """Score a DataFrame (returned with its predictions) or files (as a job):
        %sfscore iris@champion X_test -o scored; %sfscore iris data.csv scored.parquet."""
        args = _parse(self.sfscore, line)
        if args.output is None:
            return self._score_frame(args)
        self._score_files(args)
        return None

    def _score_frame(self, args: argparse.Namespace) -> pd.DataFrame:
        if args.engine is not None:
            raise UsageError(f"--engine applies to scoring files: {SCORE_FILES}.")
        if args.endpoint is not None and args.deployment is not None:
            raise UsageError(f"Give --endpoint URL or --deployment ID, not both: {SCORE_FRAME}.")
        if args.variable is not None and not args.variable.isidentifier():
            raise UsageError(f"-o takes a variable name such as scored, not {args.variable!r}.")
        frame = self._frame(args.data)
        with _usage_errors():
            keep = None
            if args.keep_columns is not None:
                keep = list(split_list(args.keep_columns, "--keep-columns"))
            url = self._endpoint_url(args)
            bar = (
                progress_bar(self.shell, f"Scoring {args.data}")
                if len(frame) > PROGRESS_ROWS
                else nullcontext(None)
            )
            with bar as show:
                if url is None:
                    on_batch = None if show is None else _batch_progress(show)
                    scored = score_dataframe(
                        args.model,
                        frame,
                        keep_columns=keep,
                        prediction_column=args.prediction_column,
                        repository=self.repository,
                        progress=on_batch,
                    )
                else:
                    on_chunk = None if show is None else _chunk_progress(show)
                    scored = score_at_endpoint(
                        url,
                        frame,
                        keep_columns=keep,
                        prediction_column=args.prediction_column,
                        token=_token(),
                        progress=on_chunk,
                    )
        if args.variable is not None:
            self.shell.user_ns[args.variable] = scored
        return scored

    def _frame(self, name: str) -> pd.DataFrame:
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(
                f"No variable named {name!r} in this notebook: {SCORE_FRAME} scores the "
                f"DataFrame variable DF, {SCORE_FILES} scores files."
            )
        value = namespace[name]
        if not isinstance(value, pd.DataFrame):
            raise UsageError(
                f"{name!r} is not a pandas DataFrame (it holds {type(value).__name__}): pass a "
                f"DataFrame variable ({name} = pd.DataFrame(...) makes one)."
            )
        return value

    def _endpoint_url(self, args: argparse.Namespace) -> str | None:
        """Where to send the rows: --endpoint, the --deployment's URL, or None (in-process)."""
        if args.endpoint is not None:
            return args.endpoint
        if args.deployment is None:
            return None
        deployment = Deployments(self.repository).get(args.deployment)
        if deployment.status != "running":
            why = f" ({deployment.error})" if deployment.error else ""
            raise UsageError(
                f"Deployment {deployment.id} of {deployment.ref} is {deployment.status}{why}, so "
                f"it has no endpoint: %sfdeploy {deployment.ref} deploys it again."
            )
        requested = self.repository.resolve(args.model).ref
        if requested != deployment.ref:
            raise UsageError(
                f"Deployment {deployment.id} serves {deployment.ref}, not {requested}: "
                f"%sfscore {deployment.ref} {args.data} --deployment {deployment.id}."
            )
        return deployment.url

    def _score_files(self, args: argparse.Namespace) -> None:
        for flag, value in [
            ("-o", args.variable),
            ("--endpoint", args.endpoint),
            ("--deployment", args.deployment),
        ]:
            if value is not None:
                raise UsageError(
                    f"{flag} applies to scoring a DataFrame ({SCORE_FRAME}); files are scored "
                    f"in a job: {SCORE_FILES}."
                )
        settings = {
            "model": args.model,
            "input": args.data,
            "output": args.output,
            "engine": args.engine,
            "keep_columns": args.keep_columns,
            "prediction_column": args.prediction_column,
        }
        with _usage_errors():
            spec = WorkflowSpec.from_dict(settings)
            runner = JobRunner(self.repository)
            job = runner.submit(spec)
            job = self._follow(runner, job, f"Scoring {Path(spec.input).name}")
        if job.status != "succeeded":
            raise UsageError(f"Job {job.id} {job.status}: {job.error}")
        print(
            f"Scored {job.rows_done:,} rows into {job.output_path} in {job.seconds or 0:.1f} s "
            f"(job {job.id})."
        )

    def _follow(self, runner: JobRunner, job: Job, label: str) -> Job:
        """Wait for the job with a live progress bar; Ctrl-C cancels it."""
        try:
            with progress_bar(self.shell, label) as show:
                return runner.wait(job.id, on_update=lambda now: show(now.fraction, _state(now)))
        except KeyboardInterrupt:
            with suppress(Conflict):  # it ended on its own meanwhile
                runner.cancel(job.id)
            ended = runner.get(job.id)
            raise UsageError(
                f"Interrupted: job {ended.id} is {ended.status}. {ended.error}".strip()
            ) from None

    @magic_arguments()
    @argument("--status", help="Only jobs in this state (queued, running, succeeded, ...).")
    @argument("--limit", type=int, default=20, help="How many of the newest jobs to show.")
    @line_magic
    def sfjobs(self, line: str) -> pd.DataFrame:
        """The newest score jobs, newest first: %sfjobs --status failed."""
        args = _parse(self.sfjobs, line)
        if args.limit < 1:
            raise UsageError(f"--limit must be 1 or more, not {args.limit}.")
        with _usage_errors():
            jobs = JobRunner(self.repository).list(status=args.status, limit=args.limit)
        rows = [
            {
                "id": job.id,
                "status": job.status,
                "model": job.spec.model,
                "input": job.spec.input,
                "output": job.output_path,
                "engine": job.spec.engine,
                "rows": job.rows_done,
                "done": "" if job.fraction is None else f"{job.fraction:.0%}",
                "seconds": job.seconds,
                "created_at": job.created_at,
                "error": job.error.splitlines()[0] if job.error else "",
            }
            for job in jobs
        ]
        columns = ["id", "status", "model", "input", "output", "engine", "rows", "done"]
        return pd.DataFrame(rows, columns=[*columns, "seconds", "created_at", "error"])

    # ------------------------------------------------------------------------ deploying

    @magic_arguments()
    @argument("model", metavar="REF", help="The model version: NAME, NAME:VERSION, NAME@ALIAS.")
    @argument("--target", default="local", choices=sorted(TARGETS), help="Where to serve it.")
    @argument("--register", action="store_true", help="Register it in MLflow first if needed.")
    @argument("--cells", choices=CELLS_MODES, help="How the snippets arrive (default auto).")
    @argument("--no-cells", action="store_true", help="Do not add the snippet cells.")
    @line_magic
    def sfdeploy(self, line: str) -> None:
        """Deploy a registered model version as a REST endpoint, then add cells that score it:
        %sfdeploy iris@champion --register."""
        args = _parse(self.sfdeploy, line)
        if args.no_cells and args.cells is not None:
            raise UsageError("Give --no-cells or --cells MODE, not both.")
        status = StatusLine(self.shell)
        with _usage_errors():
            version = self.repository.resolve(args.model)
            registry = MlflowRegistry(self.repository)
            if not registry.registrations(version.ref):
                if not args.register:
                    raise UsageError(
                        f"{version.ref} is not registered in MLflow, and a deployment serves the "
                        f"registered model: add --register (%sfdeploy {args.model} --register)."
                    )
                status.show(f"Registering {version.ref} in MLflow…")
                registry.register(version.ref)
            deployments = Deployments(self.repository)
            deployment = deployments.begin(version.ref, args.target)
            started = time.monotonic()
            status.show(
                f"Deploying {version.ref} as {deployment.id} ({args.target}): waiting for the "
                "endpoint to answer…"
            )
            try:
                deployment = deployments.launch(deployment.id, token=_token())
            except KeyboardInterrupt:
                raise UsageError(
                    f"Interrupted: deployment {deployment.id} of {version.ref} was stopped "
                    "before its endpoint came up."
                ) from None
            status.show(
                f"Deployed {version.ref} as {deployment.id}: the endpoint answers at "
                f"{deployment.url} ({time.monotonic() - started:.1f} s)."
            )
            _show_deployment(deployment)
            if not args.no_cells:
                self._emit(
                    deployments.snippets(deployment.id),
                    _deployment_summary(deployment),
                    key=deployment.id,
                    mode=args.cells or "auto",
                )

    @magic_arguments()
    @argument("target", metavar="ID_OR_REF", help="A deployment id, or a registered version.")
    @argument("--cells", choices=CELLS_MODES, default="auto", help="How the snippets arrive.")
    @line_magic
    def sfsnippets(self, line: str) -> None:
        """Cells that score a deployment (python and curl) or, for a registered version, load
        it from MLflow and score a DataFrame: %sfsnippets 3f2a9c1b0d4e."""
        args = _parse(self.sfsnippets, line)
        with _usage_errors():
            deployments = Deployments(self.repository)
            if deployments.exists(args.target):
                deployment = deployments.get(args.target)
                found = deployments.snippets(deployment.id)
                summary = _deployment_summary(deployment)
            else:
                found = offline_snippets(self.repository, args.target)
                summary = f"Score {args.target} offline from MLflow."
        self._emit(found, summary, key=args.target, mode=args.cells)

    def _emit(self, snippets: list[Snippet], summary: str, *, key: str, mode: str) -> None:
        """Hand the snippets over as `mode` says; auto: cells where a notebook can take them,
        printed in a terminal."""
        if mode == "auto":
            mode = "bundle" if has_frontend(self.shell) else "print"
        if mode == "bundle":
            bundle = cells.cells_bundle(snippets, summary=summary, key=key)
            display(cells.display_data(bundle), raw=True)
        elif mode == "next-input":
            self.shell.set_next_input(cells.combined_cell(snippets), replace=False)
        else:
            print(cells.plain_text(snippets))

    @magic_arguments()
    @argument("deployment", metavar="ID", help="The deployment to stop (%sfdeploy prints it).")
    @line_magic
    def sfundeploy(self, line: str) -> None:
        """Stop a deployment: %sfundeploy 3f2a9c1b0d4e."""
        args = _parse(self.sfundeploy, line)
        with _usage_errors():
            deployment = Deployments(self.repository).undeploy(args.deployment)
        print(f"Undeployed {deployment.ref} ({deployment.id}): {deployment.url} is stopped.")


def _batch_progress(show: Show) -> Callable[[BatchProgress], None]:
    return lambda progress: show(progress.fraction, f"{progress.rows_done:,} rows")


def _chunk_progress(show: Show) -> Callable[[int, int], None]:
    return lambda done, total: show(done / total, f"{done:,} rows")


def _state(job: Job) -> str:
    rows = f"{job.rows_done:,} rows"
    return rows if job.status == "running" else f"{rows} ({job.status})"


def _deployment_summary(deployment: Deployment) -> str:
    return f"Score {deployment.ref} at {deployment.url} (deployment {deployment.id})."


def _show_deployment(deployment: Deployment) -> None:
    show_fields(
        f"Deployment {deployment.id}",
        [
            ("model", deployment.ref),
            ("MLflow model", deployment.model_uri),
            ("target", deployment.target),
            ("URL", deployment.url),
            ("status", deployment.status),
            ("undeploy", f"%sfundeploy {deployment.id}"),
        ],
    )
