"""Job reports by e-mail, received by a real SMTP server (aiosmtpd) that the test starts."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _endpoint_helpers import free_port
from _smtp import Inbox, received, running_smtp_server
from conftest import FAST_SAVE

from jupyter_sparkserve.errors import InvalidInput
from jupyter_sparkserve.repository import database as db
from jupyter_sparkserve.workflows import JobRunner, Workflows, WorkflowSpec
from jupyter_sparkserve.workflows.email import (
    EmailNotSent,
    SmtpSettings,
    job_report,
    parse_addresses,
    send_job_report,
)
from jupyter_sparkserve.workflows.jobs import Job

pytestmark = pytest.mark.timeout(300)
PASSWORD = "s3cret-Pa55"


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, int]]:
    with running_smtp_server() as (inbox, port):
        monkeypatch.setenv("SPARKSERVE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SPARKSERVE_SMTP_PORT", str(port))
        monkeypatch.setenv("SPARKSERVE_SMTP_SENDER", "Sparkserve <jobs@example.com>")
        yield inbox, port


def finished_job(tmp_path: Path, status: str = "failed") -> Job:
    """A finished job as the store returns it, for the report's own tests."""
    log_file = tmp_path / "log"
    log_file.write_text("line one\nTraceback: boom\n")
    now = db.utcnow()
    return Job(
        id="abc123",
        kind="score",
        workflow_id=4,
        workflow_name="nightly",
        spec=WorkflowSpec(model="iris:1", input="/d/in.csv", output="/d/out.csv"),
        status=status,
        host="here",
        pid=1,
        pid_start=1,
        cancel_requested=False,
        rows_done=1500,
        rows_total=None,
        progress=None,
        output_path="/d/out.csv",
        log_file=log_file,
        error="boom" if status == "failed" else "",
        created_at=now,
        started_at=now,
        finished_at=now,
        updated_at=now,
    )


def test_smtp_settings_from_the_environment() -> None:
    assert SmtpSettings.from_env({}) is None
    plain = SmtpSettings.from_env({"SPARKSERVE_SMTP_HOST": "mail.example.com"})
    assert plain is not None
    assert (plain.port, plain.starttls, plain.user, plain.password) == (25, False, None, None)
    assert plain.sender.startswith("sparkserve@")
    secure = SmtpSettings.from_env(
        {
            "SPARKSERVE_SMTP_HOST": "mail.example.com",
            "SPARKSERVE_SMTP_STARTTLS": "yes",
            "SPARKSERVE_SMTP_USER": "robot",
            "SPARKSERVE_SMTP_PASSWORD": PASSWORD,
        }
    )
    assert secure is not None
    assert (secure.port, secure.starttls, secure.user) == (587, True, "robot")
    assert PASSWORD not in repr(secure)
    for bad, message in [
        ({"SPARKSERVE_SMTP_PORT": "smtp"}, "SPARKSERVE_SMTP_PORT must be a port number"),
        ({"SPARKSERVE_SMTP_PORT": "70000"}, "SPARKSERVE_SMTP_PORT must be a port number"),
        ({"SPARKSERVE_SMTP_STARTTLS": "maybe"}, "SPARKSERVE_SMTP_STARTTLS must be true or false"),
        ({"SPARKSERVE_SMTP_SENDER": "jobs"}, "SPARKSERVE_SMTP_SENDER must be an e-mail address"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            SmtpSettings.from_env({"SPARKSERVE_SMTP_HOST": "mail.example.com", **bad})


def test_addresses() -> None:
    assert parse_addresses(" a@example.com,b@localhost ,, a@example.com", "x") == (
        "a@example.com",
        "b@localhost",
    )
    assert parse_addresses(["c@example.com"], "x") == ("c@example.com",)
    assert parse_addresses(None, "x") == ()
    for bad in ["a@b@c", "a b@example.com", "Ann <a@example.com>", "@example.com"]:
        with pytest.raises(InvalidInput, match=r"emailOnFailure: .* is not an e-mail address"):
            parse_addresses(bad, "emailOnFailure")


def test_the_report_says_what_happened(tmp_path: Path) -> None:
    message = job_report(finished_job(tmp_path), "jobs@example.com", ["a@example.com"])
    assert message["Subject"] == "[sparkserve] job abc123 failed: workflow 4 (nightly)"
    body = message.get_content()
    assert "rows      1,500" in body
    assert "Error:\nboom" in body
    assert "Traceback: boom" in body  # the log tail, for a failure
    succeeded = job_report(finished_job(tmp_path, "succeeded"), "j@example.com", ["a@x.org"])
    assert "Last lines" not in succeeded.get_content()


def test_reports_for_success_and_failure_arrive(
    smtp_server, repo, iris, iris_model, tmp_path: Path
) -> None:
    inbox, _port = smtp_server
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    good = tmp_path / "good.csv"
    iris[0].to_csv(good, index=False)
    bad = tmp_path / "bad.csv"  # a column the model needs is missing
    iris[0].drop(columns=["petal width (cm)"]).to_csv(bad, index=False)
    workflow = Workflows(repo).create(
        {
            "model": "iris",
            "input": str(good),
            "output": str(tmp_path / "good.parquet"),
            "email_on_success": "team@example.com",
        },
        name="daily iris",
    )
    runner = JobRunner(repo, max_jobs=2)
    succeeded = runner.submit(workflow.spec, workflow=workflow)
    failed = runner.submit(
        WorkflowSpec(
            model="iris",
            input=str(bad),
            output=str(tmp_path / "bad.parquet"),
            email_on_success=("team@example.com",),  # not told of a failure
            email_on_failure=("ops@example.com", "oncall@example.com"),
        )
    )
    assert runner.wait(succeeded.id, timeout=240).status == "succeeded"
    failed = runner.wait(failed.id, timeout=240)
    assert failed.status == "failed"
    assert "petal width (cm)" in failed.error

    envelopes = {tuple(e.rcpt_tos): e for e in inbox.wait_for(2)}
    assert set(envelopes) == {("team@example.com",), ("ops@example.com", "oncall@example.com")}
    assert envelopes[("team@example.com",)].mail_from == "jobs@example.com"
    success = received(envelopes[("team@example.com",)])
    assert success["Subject"] == (
        f"[sparkserve] job {succeeded.id} succeeded: workflow {workflow.id} (daily iris)"
    )
    assert success["From"] == "Sparkserve <jobs@example.com>"
    text = success.get_content()
    assert "rows      150" in text
    assert f"output    {tmp_path / 'good.parquet'}" in text
    assert "Last lines" not in text

    failure = received(envelopes[("ops@example.com", "oncall@example.com")])
    assert failure["Subject"] == f"[sparkserve] job {failed.id} failed: score"
    assert failure["To"] == "ops@example.com, oncall@example.com"
    assert "petal width (cm)" in failure.get_content()
    assert f"Last lines of {failed.log_file}" in failure.get_content()
    assert "Sent the report to team@example.com." in runner.log(succeeded.id)
    assert "Sent the report to ops@example.com, oncall@example.com." in runner.log(failed.id)


def test_a_failed_send_never_fails_the_job(
    repo, iris, iris_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKSERVE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SPARKSERVE_SMTP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("SPARKSERVE_SMTP_USER", "robot")
    monkeypatch.setenv("SPARKSERVE_SMTP_PASSWORD", PASSWORD)
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    data = tmp_path / "in.csv"
    iris[0].to_csv(data, index=False)
    runner = JobRunner(repo)
    job = runner.submit(
        WorkflowSpec(
            model="iris",
            input=str(data),
            output=str(tmp_path / "out.csv"),
            email_on_success=("team@example.com",),
        )
    )
    job = runner.wait(job.id, timeout=240)
    assert job.status == "succeeded"
    time.sleep(0.5)  # the send is tried after the status is recorded
    log = runner.log(job.id)
    assert "The e-mail report was not sent: The SMTP server 127.0.0.1:" in log
    assert "ConnectionRefusedError" in log
    assert PASSWORD not in log
    assert runner.get(job.id).status == "succeeded"


def test_an_unexpected_error_while_sending_is_logged_not_raised(
    smtp_server, repo, tmp_path: Path
) -> None:
    """A name saved before names were checked may hold a line break, which the Subject
    refuses with a ValueError: the job process must log it, not crash after its status."""
    job = dataclasses.replace(
        finished_job(tmp_path, "succeeded"),
        workflow_name="nightly\r\nBcc: x@example.com",
        spec=WorkflowSpec(
            model="iris:1", input="/d/in.csv", output="/d/out.csv", email_on_success=("a@x.org",)
        ),
    )
    JobRunner(repo)._notify(job)
    assert "The e-mail report was not sent: ValueError:" in job.log_file.read_text()


def test_a_refused_login_is_reported_without_the_password(smtp_server, tmp_path: Path) -> None:
    _inbox, port = smtp_server
    settings = SmtpSettings(
        host="127.0.0.1", port=port, sender="jobs@example.com", user="robot", password=PASSWORD
    )
    with pytest.raises(EmailNotSent) as raised:  # this server offers no AUTH
        send_job_report(finished_job(tmp_path), ["a@example.com"], settings)
    assert f"The SMTP server 127.0.0.1:{port} did not take the report" in raised.value.message
    assert "AUTH" in raised.value.message
    assert PASSWORD not in raised.value.message
    anonymous = dataclasses.replace(settings, user=None, password=None)
    send_job_report(finished_job(tmp_path), ["a@example.com"], anonymous)
    assert _inbox.wait_for(1)[0].rcpt_tos == ["a@example.com"]
