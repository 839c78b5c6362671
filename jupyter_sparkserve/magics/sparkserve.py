"""IPython magics: the notebook face of the core (`%load_ext jupyter_sparkserve`).

They run in the kernel against the same SPARKSERVE_HOME as the Jupyter server, so what a magic
saves, deploys or scores shows in the sidebar. A magic parses its line, calls the core and
shows the answer; every user mistake becomes a UsageError that says what to type, never a
traceback. This module has the repository, scoring and jobs magics; `deploying` the others.

    %sfsave OBJ NAME [-x EXAMPLE] [-d TEXT] [--tag K=V] [--metric K=V]
    %sfmodels [--filter TEXT] [--tag K[=V]] [--limit N]
    %sfscore REF DF [-o NAME] [--endpoint URL | --deployment ID] [--keep-columns A,B]
    %sfscore REF INPUT OUTPUT [--engine local|spark|container] [--keep-columns A,B]
    %sfjobs [--status STATUS] [--limit N] [--cancel ID]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..deploy.deployments import Deployments
from ..quiet import in_notebook
from ..repository.names import parse_key_values
from ..scoring.batch import BatchProgress
from ..scoring.client import score_at_endpoint
from ..scoring.engines import engines
from ..scoring.offline import score_dataframe
from ..workflows import JobRunner, WorkflowSpec
from ..workflows.definitions import split_list
from ..workflows.preflight import check_score
from .common import RepositoryMagics, follow_job, parse, token, usage_errors
from .output import Show, progress_bar

PROGRESS_ROWS = 100_000  # a DataFrame larger than this gets a progress bar
SCORE_FILES = "%sfscore REF INPUT OUTPUT [--engine local|spark|container]"
SCORE_FRAME = "%sfscore REF DF [-o NAME] [--endpoint URL | --deployment ID]"


@magics_class
class SparkserveMagics(RepositoryMagics):
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
        args = parse(self.sfsave, line)
        model = self.variable(args.model, "model to save")
        example = self.variable(args.input_example, "input example") if args.input_example else None
        with usage_errors(), in_notebook():
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
    def sfmodels(self, line: str) -> pd.DataFrame | None:
        """List the repository's models: %sfmodels --filter iris."""
        args = parse(self.sfmodels, line)
        with usage_errors():
            page = self.repository.list_models(
                name_contains=args.name_contains, tag=args.tag, limit=args.limit
            )
        if not page.items:
            filtered = args.name_contains is not None or args.tag is not None
            print("No models match." if filtered else "No models yet.")
            return None
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
    @argument("--engine", choices=list(engines()), help="Files only: local (default), spark, ...")
    @line_magic
    def sfscore(self, line: str) -> pd.DataFrame | None:
        """Score a DataFrame (returned with its predictions) or files (as a job):
        %sfscore iris@champion X_test -o scored; %sfscore iris data.csv scored.parquet."""
        args = parse(self.sfscore, line)
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
        with usage_errors():
            keep = None
            if args.keep_columns is not None:
                keep = list(split_list(args.keep_columns, "--keep-columns"))
            url = self._endpoint_url(args)
            bar = (
                progress_bar(self.shell, f"Scoring {args.data}")
                if len(frame) > PROGRESS_ROWS
                else nullcontext(None)
            )
            with bar as show, in_notebook():
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
                        token=token(),
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
        with usage_errors():
            spec = WorkflowSpec.from_dict(settings)
            with in_notebook():  # a missing file or column is refused here: no job is made
                check_score(spec, repository=self.repository)
            runner = JobRunner(self.repository)
            job = runner.submit(spec)
            job = follow_job(self.shell, runner, job, f"Scoring {Path(spec.input).name}")
        if job.status != "succeeded":
            raise UsageError(f"Job {job.id} {job.status}: {job.error}")
        print(
            f"Scored {job.rows_done:,} rows into {job.output_path} in {job.seconds or 0:.1f} s "
            f"(job {job.id})."
        )

    @magic_arguments()
    @argument("--status", help="Only jobs in this state (queued, running, succeeded, ...).")
    @argument("--limit", type=int, default=20, help="How many of the newest jobs to show.")
    @argument("--cancel", metavar="ID", help="Cancel this job (it leaves no output), then list.")
    @line_magic
    def sfjobs(self, line: str) -> pd.DataFrame | None:
        """The newest jobs (score runs, image builds), newest first: %sfjobs --status failed."""
        args = parse(self.sfjobs, line)
        if args.cancel is not None:
            with usage_errors():
                cancelled = JobRunner(self.repository).cancel(args.cancel)
            print(f"Job {cancelled.id} is {cancelled.status}.")
        if args.limit < 1:
            raise UsageError(f"--limit must be 1 or more, not {args.limit}.")
        with usage_errors():
            jobs = JobRunner(self.repository).list(status=args.status, limit=args.limit)
        if not jobs:
            print(f"No {args.status} jobs." if args.status else "No jobs yet.")
            return None
        rows = [
            {
                "id": job.id,
                "kind": job.kind,
                "status": job.status,
                "job": job.title,
                "progress": job.progress_text,
                "done": "" if job.fraction is None else f"{job.fraction:.0%}",
                "output": job.output_path,
                "created_at": job.created_at,
                "error": job.error.splitlines()[0] if job.error else "",
            }
            for job in jobs
        ]
        columns = ["id", "kind", "status", "job", "progress", "done", "output", "created_at"]
        return pd.DataFrame(rows, columns=[*columns, "error"])


def _batch_progress(show: Show) -> Callable[[BatchProgress], None]:
    return lambda progress: show(progress.fraction, progress.text)


def _chunk_progress(show: Show) -> Callable[[int, int], None]:
    return lambda done, total: show(done / total, f"{done:,} rows")
