"""The jobs view's progress bar in a real JupyterLab and Chromium: below 100% until the job's
last row is written (checked against the job's row count from the REST API), and a job
cancelled part-way keeps the share it stopped at."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _files import read_any
from _lab import SIDEBAR, SIDEBAR_TAB, open_lab, our_errors, our_tracebacks, start_lab, stop_lab
from _lab import browser as browser  # the fixture, for the test below

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:Add type hints to the `predict` method:UserWarning"),
]

ROWS = 300_000  # about 11 MB of CSV: a dozen blocks, so a dozen batches
API = "sparkserve/api/v1"


def job_row(page: Any, job_id: str) -> Any:
    return page.locator(f'{SIDEBAR} [data-testid="sparkserve-job"][data-job-id="{job_id}"]')


def bar_value(row: Any) -> int:
    """The bar's share in percent; an indeterminate bar (no value yet) counts as 0."""
    value = row.locator(".jp-SparkserveJob-progress").get_attribute("aria-valuenow")
    return 0 if value is None else int(value)


def show_job(page: Any, job_id: str) -> Any:
    """The job's row in the jobs view, once it lists the job (pressing Refresh if the view
    does not pick it up by itself)."""
    row = job_row(page, job_id)
    deadline = time.monotonic() + 60
    while not row.count():
        assert time.monotonic() < deadline, "the jobs view never listed the job"
        refresh = page.locator(f'{SIDEBAR} [data-testid="sparkserve-refresh"]')
        if refresh.count() and refresh.first.is_enabled():
            refresh.first.click()
        page.wait_for_timeout(1000)
    return row


def test_the_bar_stays_below_100_until_the_last_row_is_written(
    browser, home: Path, tmp_path: Path, slow_model
) -> None:
    ref = slow_model(1.0)  # a dozen batches of a second each
    rng = np.random.default_rng(15)
    source = tmp_path / "in" / "big.csv"
    source.parent.mkdir()
    pd.DataFrame({"x1": rng.random(ROWS), "x2": rng.random(ROWS)}).to_csv(source, index=False)
    output = tmp_path / "out" / "scored.csv"
    output.parent.mkdir()

    lab = start_lab(tmp_path, home)
    try:
        page, errors = open_lab(browser, lab)
        page.locator(SIDEBAR_TAB).click()
        page.locator(SIDEBAR).wait_for()

        job = lab.api("POST", f"{API}/jobs", {"spec": {"model": ref, "input": str(source),
                                                       "output": str(output)}})  # fmt: skip
        row = show_job(page, job["id"])
        seen: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + 300
        while True:
            shown = bar_value(row)
            now = lab.api("GET", f"{API}/jobs/{job['id']}")  # read after the bar: as new
            seen.append((shown, now))
            if now["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, "timed out"
            # Until the last row is written (and the output is in place), never 100%.
            assert shown < 100, (shown, now["rows_done"], now["progress_text"])
            page.wait_for_timeout(250)
        assert now["status"] == "succeeded", now["error"]
        assert now["rows_done"] == ROWS == len(read_any(output))
        row.locator(".jp-SparkserveJob-progress[aria-valuenow='100']").wait_for()

        running = [(shown, j) for shown, j in seen if j["status"] == "running" and j["progress"]]
        moving = {shown for shown, _ in running if 0 < shown < 100}
        assert len(moving) >= 3, seen  # the bar moved, honestly below 100%
        for _, j in running:  # the share is that of the rows written
            assert abs(j["fraction"] - j["rows_done"] / ROWS) < 0.05
        texts = [j["progress_text"] for _, j in running]
        assert any("rows/s" in text and "left" in text for text in texts), texts
        assert "rows/s" in row.locator('[data-testid="sparkserve-job-rows"]').inner_text()

        # A job cancelled part-way keeps its share: no full bar.
        other = tmp_path / "out" / "cancelled.csv"
        job = lab.api("POST", f"{API}/jobs", {"spec": {"model": ref, "input": str(source),
                                                       "output": str(other)}})  # fmt: skip
        row = show_job(page, job["id"])
        page.wait_for_function(
            "row => Number(row.querySelector('.jp-SparkserveJob-progress')"
            ".getAttribute('aria-valuenow')) > 0",
            arg=row.element_handle(),
            timeout=120_000,
        )
        row.locator('[data-testid="sparkserve-job-cancel"]').click()
        row.locator('[data-testid="sparkserve-job-status"]', has_text="cancelled").wait_for(
            timeout=60_000
        )
        cancelled = lab.api("GET", f"{API}/jobs/{job['id']}")
        assert cancelled["status"] == "cancelled"
        assert 0 < cancelled["fraction"] < 1
        page.wait_for_timeout(1500)  # a poll later, still where it stopped
        assert 0 < bar_value(row) == round(100 * cancelled["fraction"]) < 100
        assert not other.exists()

        assert our_errors(errors) == []
        page.close()
    finally:
        stop_lab(lab)
    assert our_tracebacks(lab) == []
