"""E-mail reports for finished jobs, through the SMTP server the environment names.

The SMTP settings (`config.SmtpSettings`, `SPARKSERVE_SMTP_*`) are read in the process that
sends: the job's own process, or the one that finds a dead job. The password never appears
in a message, a log or a repr.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from ..config import EMAIL_ADDRESS, SmtpSettings
from ..errors import InvalidInput, SparkserveError
from ..processes import log_tail

if TYPE_CHECKING:
    from .job_record import Job

REPORT_LOG_LINES = 30


class EmailNotSent(SparkserveError):
    code = "EMAIL_NOT_SENT"
    http_status = 502


def parse_addresses(value: object, what: str) -> tuple[str, ...]:
    """E-mail addresses from a comma-separated string or a list of strings, in order and
    without repeats; `what` names the setting in error messages."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Sequence[object] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise InvalidInput(
            f"{what} must be e-mail addresses separated by commas, got {type(value).__name__}."
        )
    addresses: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput(f"{what}: {item!r} is not an e-mail address.")
        address = item.strip()
        if not address:
            continue
        if "=?" in address:  # an RFC 2047 encoded word can hide a line break in a header
            raise InvalidInput(
                f"{what}: {address!r} is not a plain e-mail address (encoded words are refused)."
            )
        if not EMAIL_ADDRESS.fullmatch(address):
            raise InvalidInput(
                f"{what}: {address!r} is not an e-mail address (expected name@example.com; "
                "separate several with commas)."
            )
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


def job_report(job: Job, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """A short plain-text report of a finished job."""
    what = f"workflow {job.workflow_id}" if job.workflow_id is not None else "score"
    if job.workflow_name:
        what += f" ({job.workflow_name})"
    lines = [
        ("job", job.id),
        ("workflow", what),
        ("status", job.status),
        ("model", job.spec.model),
        ("input", job.spec.input),
        ("output", job.output_path or job.spec.output),
        ("rows", f"{job.rows_done:,}"),
        ("started", job.started_at.isoformat(timespec="seconds") if job.started_at else "-"),
        ("finished", job.finished_at.isoformat(timespec="seconds") if job.finished_at else "-"),
        ("duration", f"{job.seconds:.1f} s" if job.seconds is not None else "-"),
    ]
    width = max(len(label) for label, _ in lines)
    body = [f"{label.ljust(width)}  {value}" for label, value in lines]
    if job.error:
        body += ["", "Error:", job.error]
    if job.status != "succeeded":
        tail = log_tail(job.log_file, REPORT_LOG_LINES)
        body += ["", f"Last lines of {job.log_file}:", tail or "(empty)"]
    message = EmailMessage()
    message["Subject"] = f"[sparkserve] job {job.id} {job.status}: {what}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="sparkserve")
    message.set_content("\n".join(body) + "\n")
    return message


def send_job_report(job: Job, recipients: Sequence[str], settings: SmtpSettings) -> None:
    """Send the report of `job` to `recipients`; EmailNotSent says why when it could not."""
    message = job_report(job, settings.sender, recipients)
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            refused = smtp.send_message(message)
    except OSError as error:  # smtplib's own errors are OSErrors too
        detail = f"{type(error).__name__}: {error}"
        if settings.password:  # a server may echo what it was sent
            detail = detail.replace(settings.password, "***")
        raise EmailNotSent(f"The SMTP server {where} did not take the report ({detail}).") from None
    if refused:
        raise EmailNotSent(
            f"The SMTP server {where} refused {', '.join(sorted(refused))} (the others got it)."
        )
