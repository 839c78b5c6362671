"""E-mail reports for finished jobs, through the SMTP server the environment names.

Read in the process that sends (the job's own process, or the one that finds a dead job):

| variable | meaning | default |
| --- | --- | --- |
| `SPARKSERVE_SMTP_HOST` | SMTP server; unset means no mail is sent | |
| `SPARKSERVE_SMTP_PORT` | its port | 587 with STARTTLS, else 25 |
| `SPARKSERVE_SMTP_SENDER` | the From address | `sparkserve@<this host>` |
| `SPARKSERVE_SMTP_STARTTLS` | upgrade the connection with STARTTLS (1/true/yes) | false |
| `SPARKSERVE_SMTP_USER`, `SPARKSERVE_SMTP_PASSWORD` | log in when a user is set | |

The password never appears in a message, a log or a repr.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING

from ..deploy.local import log_tail
from ..errors import InvalidInput, SparkserveError

if TYPE_CHECKING:
    from .jobs import Job

HOST_ENV = "SPARKSERVE_SMTP_HOST"
PORT_ENV = "SPARKSERVE_SMTP_PORT"
SENDER_ENV = "SPARKSERVE_SMTP_SENDER"
STARTTLS_ENV = "SPARKSERVE_SMTP_STARTTLS"
USER_ENV = "SPARKSERVE_SMTP_USER"
PASSWORD_ENV = "SPARKSERVE_SMTP_PASSWORD"

REPORT_LOG_LINES = 30
# One address: no spaces, quotes, brackets or separators; a domain without a dot
# (user@localhost) is allowed.
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"']+@[^@\s<>()\[\],;:\"']+")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


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
        if not _ADDRESS.fullmatch(address):
            raise InvalidInput(
                f"{what}: {address!r} is not an e-mail address (expected name@example.com; "
                "separate several with commas)."
            )
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings | None:
        """The settings, or None when SPARKSERVE_SMTP_HOST is not set."""
        env = os.environ if environ is None else environ
        host = env.get(HOST_ENV, "").strip()
        if not host:
            return None
        starttls_text = env.get(STARTTLS_ENV, "").strip().lower()
        if starttls_text not in _TRUE + _FALSE:
            raise InvalidInput(f"{STARTTLS_ENV} must be true or false, got {starttls_text!r}.")
        starttls = starttls_text in _TRUE
        port_text = env.get(PORT_ENV, "").strip()
        try:
            port = int(port_text) if port_text else (587 if starttls else 25)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise InvalidInput(f"{PORT_ENV} must be a port number, got {port_text!r}.")
        sender = env.get(SENDER_ENV, "").strip() or f"sparkserve@{socket.getfqdn()}"
        if not _ADDRESS.fullmatch(parseaddr(sender)[1]):
            raise InvalidInput(
                f"{SENDER_ENV} must be an e-mail address such as sparkserve@example.com or "
                f"'Sparkserve <sparkserve@example.com>', got {sender!r}."
            )
        return cls(
            host=host,
            port=port,
            sender=sender,
            starttls=starttls,
            user=env.get(USER_ENV, "").strip() or None,
            password=env.get(PASSWORD_ENV) or None,
        )


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
