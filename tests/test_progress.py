"""Honest progress: a run reports the rows it has scored and written, never what its reader
has read ahead, reaches 100% only once its output is in place, and a job cancelled part-way
keeps the share it stopped at. Real models (slow enough to watch), real files, real job
processes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _files import read_any, wait_until
from click.testing import CliRunner

from jupyter_sparkserve.cli import main
from jupyter_sparkserve.scoring import batch
from jupyter_sparkserve.scoring.offline import score
from jupyter_sparkserve.workflows import JobRunner, WorkflowSpec

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:Add type hints to the `predict` method:UserWarning"),
]

ROWS = 300_000  # about 11 MB of CSV: a dozen 1 MB blocks, so a dozen batches


@pytest.fixture
def big_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(15)
    path = tmp_path / "in" / "big.csv"
    path.parent.mkdir()
    pd.DataFrame({"x1": rng.random(ROWS), "x2": rng.random(ROWS)}).to_csv(path, index=False)
    assert path.stat().st_size > 8 * batch.readers.CSV_BLOCK_BYTES
    return path


def rows_on_disk(folder: Path) -> int:
    """Rows in the CSV files of an output folder (complete or still being written)."""
    if not folder.is_dir():
        return 0
    rows = 0
    for path in folder.glob("*.csv"):
        with path.open("rb") as handle:
            rows += max(0, sum(1 for _ in handle) - 1)  # less the header
    return rows


def test_a_run_reports_the_rows_it_has_written(repo, slow_model, big_csv, tmp_path) -> None:
    ref = slow_model(0.25)  # a dozen batches: about 3 s
    output = tmp_path / "scored"
    partial = batch.partial_path(output.absolute(), "progress-test")
    seen: list[tuple[batch.BatchProgress, int, bool]] = []

    def progress(report: batch.BatchProgress) -> None:
        seen.append((report, rows_on_disk(partial), output.exists()))

    result = score(ref, big_csv, output, repository=repo, progress=progress,
                   writer_tag="progress-test")  # fmt: skip
    assert result.rows == ROWS == len(read_any(output))
    *running, (last, _, in_place) = seen
    assert len(running) >= 4, [r.rows_done for r, _, _ in running]
    # The last report comes once the output is in place, and is the only one at 100%.
    assert in_place and last.complete and last.fraction == 1.0
    assert (last.rows_done, last.seconds_left) == (ROWS, 0.0)
    assert "left" not in last.text and "rows/s" in last.text
    done = [report.rows_done for report, _, _ in running]
    assert done == sorted(done) and len(set(done)) >= 3
    for report, written, already_in_place in running:
        assert not already_in_place and not report.complete
        assert report.fraction is not None and report.fraction < 1.0
        assert report.rows_done == written  # what is on disk, not what was read
        # The share is estimated from input bytes (no total in a CSV file): it follows the
        # rows written, where the reader's position ran megabytes ahead.
        assert abs(report.fraction - report.rows_done / ROWS) < 0.05, report
    reported = [report for report, _, _ in running if report.rows_done]
    assert reported and all(r.rows_per_second and r.rows_per_second > 0 for r in reported)
    assert all(r.seconds_left is not None for r in reported)
    middle = reported[len(reported) // 2]
    assert re.fullmatch(r"[\d,]+ rows, [\d,.]+ rows/s, about \d+ (s|min) left", middle.text)
    assert {"rows_per_second", "seconds_left", "fraction"} <= set(middle.to_dict())


def test_a_known_total_counts_rows_of_it(repo, slow_model, big_csv, tmp_path) -> None:
    """Parquet says how many rows it holds: the share is the rows written of those."""
    ref = slow_model(0.1)
    source = tmp_path / "in" / "big.parquet"
    pd.read_csv(big_csv).to_parquet(source)
    reports: list[batch.BatchProgress] = []
    score(ref, source, tmp_path / "scored.parquet", repository=repo, progress=reports.append)
    *running, last = reports
    assert running and last.complete and last.fraction == 1.0
    for report in running:
        assert report.rows_total == ROWS and not report.complete
        assert report.fraction == min(batch.plan.UNFINISHED_AT_MOST, report.rows_done / ROWS)
        assert report.text.startswith(f"{report.rows_done:,} of {ROWS:,} rows")


def test_a_job_records_what_it_has_written(repo, slow_model, big_csv, tmp_path) -> None:
    ref = slow_model(1.0)  # a dozen batches: 12 s, longer than a log line's interval
    output = tmp_path / "scored"
    runner = JobRunner(repo)
    job = runner.submit(WorkflowSpec(model=ref, input=str(big_csv), output=str(output)))
    partial = batch.partial_path(output.absolute(), job.id)
    shares: list[float] = []
    texts: list[str] = []
    deadline = time.monotonic() + 240
    while True:
        now = runner.get(job.id)
        if now.finished:
            break
        assert time.monotonic() < deadline, "timed out"
        if now.status == "running" and now.progress is not None:
            # Read after the job: whatever it said it had written is on disk by now (in
            # the partial output, or in the output if it was renamed meanwhile).
            written = rows_on_disk(partial) or rows_on_disk(output)
            assert now.rows_done <= written, (now.rows_done, written)
            assert now.fraction is not None and now.fraction < 1.0
            assert now.progress["fraction"] < 1.0 and not now.progress["complete"]
            assert abs(now.fraction - now.rows_done / ROWS) < 0.05
            shares.append(now.fraction)
            texts.append(now.progress_text)
        time.sleep(0.2)

    assert now.status == "succeeded", now.error
    assert len({s for s in shares if 0 < s < 1}) >= 3, shares  # the bar moved, below 100%
    assert any(re.search(r"rows/s, about \d+ (s|min) left", text) for text in texts), texts
    assert (now.rows_done, now.rows_total, now.fraction) == (ROWS, ROWS, 1.0)
    assert now.progress is not None and now.progress["complete"]
    assert len(read_any(output)) == ROWS
    assert now.seconds_left is None and now.rows_per_second is not None
    assert "rows/s" in now.progress_text and "left" not in now.progress_text

    # The log says honest shares, each line a new one: never "(100%)" while it scored.
    lines = [line for line in runner.log(job.id).splitlines() if " Written " in line]
    assert lines, runner.log(job.id)
    logged = [int(share) for line in lines for share in re.findall(r"\((\d+)%\)$", line)]
    assert len(logged) == len(lines) and all(share < 100 for share in logged), lines
    rows = [int(re.search(r" Written ([\d,]+) rows", line)[1].replace(",", "")) for line in lines]
    assert rows == sorted(set(rows))  # a line only when more rows were written

    # The CLI words a job's progress from the same fields.
    shown = CliRunner().invoke(main, ["jobs", "show", job.id], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert now.progress_text in shown.output


def test_a_cancelled_job_keeps_the_progress_it_stopped_at(
    repo, slow_model, big_csv, tmp_path
) -> None:
    ref = slow_model(1.0)
    output = tmp_path / "scored"
    runner = JobRunner(repo)
    job = runner.submit(WorkflowSpec(model=ref, input=str(big_csv), output=str(output)))
    wait_until(lambda: runner.get(job.id).rows_done > 0)
    before = runner.get(job.id)

    cancelled = runner.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.fraction is not None and 0 < cancelled.fraction < 1.0
    assert cancelled.progress is not None and cancelled.progress["fraction"] < 1.0
    assert cancelled.fraction == pytest.approx(cancelled.rows_done / ROWS, abs=0.05)
    assert before.rows_done <= cancelled.rows_done < ROWS
    assert cancelled.to_dict()["fraction"] == cancelled.fraction
    assert cancelled.seconds_left is None and "left" not in cancelled.progress_text
    assert not output.exists()
