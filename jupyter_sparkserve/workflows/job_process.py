"""A job's own process: `python -m jupyter_sparkserve.workflows.job_process JOB_ID`.

Started detached by `JobRunner.submit`, with the repository's settings in its environment and
its output going to the job's log. It waits for a slot, scores (or builds an image), and
records the outcome; SIGTERM (what Cancel sends) sets the cancel event, so the engine stops
between batches and removes its temporary output (a build stops at its next log line).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import warnings
from typing import Any

from ..containers.build_job import BuildProgress, BuildSpec, run_build
from ..errors import Cancelled, SparkserveError
from ..repository import ModelRepository
from ..scoring.batch import BatchProgress, use_returning_allocator
from .definitions import WorkflowSpec, run_spec
from .jobs import JOB_MODULE, Job, JobRunner

PROGRESS_WRITE_SECONDS = 0.5  # at most two progress writes a second
PROGRESS_LOG_SECONDS = 10.0

log = logging.getLogger("jupyter_sparkserve.job")


class ProgressReporter:
    """The engine's progress callback: records progress in the job's row (throttled), logs
    it now and then, and turns a cancel asked for in the database into the cancel event (for
    a job cancelled from another host, which cannot signal this process)."""

    def __init__(self, runner: JobRunner, job_id: str, cancel: threading.Event) -> None:
        self.runner = runner
        self.job_id = job_id
        self.cancel = cancel
        self.latest: BatchProgress | None = None
        self._written = 0.0
        self._logged = time.monotonic()
        self._rows_logged = 0

    def __call__(self, progress: BatchProgress) -> None:
        self.latest = progress
        now = time.monotonic()
        # The last report (the output in place) is always recorded: it is the one at 100%.
        if progress.complete or now - self._written >= PROGRESS_WRITE_SECONDS:
            self._written = now
            if self.runner.report_progress(self.job_id, progress.to_dict()):
                self.cancel.set()
        # A line when rows were written since the last one, never for the end (the job's
        # own "Scored N rows" line says it).
        if (
            not progress.complete
            and progress.rows_done > self._rows_logged
            and now - self._logged >= PROGRESS_LOG_SECONDS
        ):
            self._logged, self._rows_logged = now, progress.rows_done
            fraction = progress.fraction
            share = "" if fraction is None else f" ({fraction:.0%})"
            log.info("Written %s%s", progress.text, share)


def run(runner: JobRunner, job: Job, cancel: threading.Event) -> int:
    """Score (or build) what the job says; record how it ended. The exit code: 0 unless it
    failed."""
    work = _build if isinstance(job.spec, BuildSpec) else _score
    try:
        succeeded = work(runner, job, cancel)
    except Cancelled:
        if runner.get(job.id).cancel_requested:
            runner.finish(job.id, "cancelled", error="Cancelled while running; no output written.")
            return 0
        runner.finish(job.id, "failed", error="Its process was stopped (SIGTERM) while running.")
        return 1
    except SparkserveError as error:  # finish() logs it
        runner.finish(job.id, "failed", error=error.message)
        return 1
    except Exception as error:  # a bug or an engine crash: the traceback goes to the log
        log.exception("The job failed")
        runner.finish(job.id, "failed", error=f"{type(error).__name__}: {error}")
        return 1
    runner.finish(job.id, "succeeded", **succeeded)
    return 0


def _score(runner: JobRunner, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Score the files; what the job's row records of a success."""
    spec = job.spec
    assert isinstance(spec, WorkflowSpec)
    log.info(
        "Job %s: scoring %s with %s on the %s engine into %s",
        job.id,
        spec.input,
        spec.model,
        spec.engine,
        spec.output,
    )
    reporter = ProgressReporter(runner, job.id, cancel)
    result = run_spec(
        spec,
        repository=runner.repository,
        progress=reporter,
        cancel=cancel,
        writer_tag=job.id,  # what the runner removes if this process is killed
    )
    log.info("Scored %s rows into %s in %.1f s", f"{result.rows:,}", result.output, result.seconds)
    return {
        "rows_done": result.rows,
        "rows_total": result.rows,
        "output_path": str(result.output),
        "progress": None if reporter.latest is None else reporter.latest.to_dict(),
    }


def _build(runner: JobRunner, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Build the image, the build log going to the job's log; what its row records."""
    spec = job.spec
    assert isinstance(spec, BuildSpec)
    log.info("Job %s: building the image %s of %s", job.id, spec.output, spec.model)

    def progress(report: BuildProgress) -> None:
        if runner.report_progress(job.id, report.to_dict()):
            cancel.set()

    def line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    outcome = run_build(
        spec, repository=runner.repository, log=line, progress=progress, cancel=cancel
    )
    return {"output_path": outcome.output, "progress": BuildProgress("done", 1, 1).to_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {JOB_MODULE}")
    parser.add_argument("job_id")
    parser.add_argument("--max-jobs", type=int, required=True, help="Jobs running at once.")
    args = parser.parse_args(argv)
    use_returning_allocator()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: cancel.set())
    with ModelRepository() as repository:
        runner = JobRunner(repository, max_jobs=args.max_jobs)
        job = runner.claim(args.job_id, cancel)
        if job is None:
            log.info("Job %s ended before it ran.", args.job_id)
            return 0
        return run(runner, job, cancel)


if __name__ == "__main__":
    sys.exit(main())
