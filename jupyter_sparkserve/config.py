"""Every setting sparkserve reads: environment variable names, defaults, and which values are
secrets (masked in messages, never handed to a process that does not need them).

One `Settings` value describes a repository and how its jobs run: the kernel, the Jupyter
server, the CLI, jobs and endpoint processes that share `SPARKSERVE_HOME` see the same
models. The server extension's traitlets map onto the same object (`server.app`), and a child
process gets it back through `Settings.process_env`.

Standard library only at import time: the warm scorer's client reads its names from here.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidInput

# ---------------------------------------------------------------- the repository and MLflow
HOME_ENV = "SPARKSERVE_HOME"
DATABASE_URL_ENV = "SPARKSERVE_DATABASE_URL"
ARTIFACT_ROOT_ENV = "SPARKSERVE_ARTIFACT_ROOT"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# Who a save, a deploy or a job is recorded as when no face says (the OS user otherwise).
USER_ENV = "SPARKSERVE_USER"
REGISTRY_URI_ENV = "MLFLOW_REGISTRY_URI"
DEFAULT_HOME = Path("~/.sparkserve")

# ------------------------------------------------------------------------------------ jobs
MAX_JOBS_ENV = "SPARKSERVE_MAX_JOBS"
DEFAULT_MAX_JOBS = 2

# ----------------------------------------------------------------------- job e-mail reports
SMTP_HOST_ENV = "SPARKSERVE_SMTP_HOST"
SMTP_PORT_ENV = "SPARKSERVE_SMTP_PORT"
SMTP_SENDER_ENV = "SPARKSERVE_SMTP_SENDER"
SMTP_STARTTLS_ENV = "SPARKSERVE_SMTP_STARTTLS"
SMTP_USER_ENV = "SPARKSERVE_SMTP_USER"
SMTP_PASSWORD_ENV = "SPARKSERVE_SMTP_PASSWORD"
SMTP_ENVS = (
    SMTP_HOST_ENV,
    SMTP_PORT_ENV,
    SMTP_SENDER_ENV,
    SMTP_STARTTLS_ENV,
    SMTP_USER_ENV,
    SMTP_PASSWORD_ENV,
)

# ------------------------------------------------------------------------------- endpoints
ENDPOINT_TOKEN_ENV = "SPARKSERVE_ENDPOINT_TOKEN"
# The bearer token an endpoint sends to its shadow (scoring/shadow.py), when that needs one.
SHADOW_TOKEN_ENV = "SPARKSERVE_SHADOW_TOKEN"
# Set in every uvicorn worker of a `serve --workers N` endpoint: how it finds its model.
ENDPOINT_CONFIG_ENV = "SPARKSERVE_ENDPOINT_CONFIG"
# Set by `serve` for its uvicorn protocol (scoring/connections.py), in every worker too.
ENDPOINT_HEAD_TIMEOUT_ENV = "SPARKSERVE_ENDPOINT_HEAD_TIMEOUT"
DEFAULT_HEAD_TIMEOUT_SECONDS = 10.0

# ----------------------------------------------------------------------------- warm scorer
WARM_SCORER_ENV = "SPARKSERVE_WARM_SCORER"  # auto, use or off
WARM_PRELOAD_ENV = "SPARKSERVE_WARM_PRELOAD"  # more modules to import, comma-separated
RUN_DIR_ENV = "SPARKSERVE_RUN_DIR"  # the warm scorer's socket folder
# The allocator pyarrow uses in scoring processes (jemalloc unless told otherwise).
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
DEFAULT_ARROW_POOL = "jemalloc"

# ---------------------------------------------------------------------- deployment targets
DOCKER_HOST_ENV = "DOCKER_HOST"
# The image model images are built on (scoring images and the container target).
BASE_IMAGE_ENV = "SPARKSERVE_BASE_IMAGE"
AZUREML_ENVS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")

# Secrets: never logged, never in a message or snippet, and handed only to the processes
# that use them (job processes send mail; an endpoint gets the token it was deployed with).
SECRET_ENVS = (ENDPOINT_TOKEN_ENV, SHADOW_TOKEN_ENV, SMTP_USER_ENV, SMTP_PASSWORD_ENV)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
# One address: no spaces, quotes, brackets or separators; a domain without a dot
# (user@localhost) is allowed.
# No control character either (a NUL, or a CR/LF that would add a header line).
EMAIL_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"'\x00-\x1f\x7f]+@[^@\s<>()\[\],;:\"'\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP server job reports go through (`SPARKSERVE_SMTP_*`)."""

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
        from email.utils import parseaddr

        env = os.environ if environ is None else environ
        host = env.get(SMTP_HOST_ENV, "").strip()
        if not host:
            return None
        starttls_text = env.get(SMTP_STARTTLS_ENV, "").strip().lower()
        if starttls_text not in _TRUE + _FALSE:
            raise InvalidInput(f"{SMTP_STARTTLS_ENV} must be true or false, got {starttls_text!r}.")
        starttls = starttls_text in _TRUE
        port_text = env.get(SMTP_PORT_ENV, "").strip()
        try:
            port = int(port_text) if port_text else (587 if starttls else 25)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise InvalidInput(f"{SMTP_PORT_ENV} must be a port number, got {port_text!r}.")
        sender = env.get(SMTP_SENDER_ENV, "").strip() or f"sparkserve@{socket.getfqdn()}"
        if not EMAIL_ADDRESS.fullmatch(parseaddr(sender)[1]):
            raise InvalidInput(
                f"{SMTP_SENDER_ENV} must be an e-mail address such as sparkserve@example.com or "
                f"'Sparkserve <sparkserve@example.com>', got {sender!r}."
            )
        return cls(
            host=host,
            port=port,
            sender=sender,
            starttls=starttls,
            user=env.get(SMTP_USER_ENV, "").strip() or None,
            password=env.get(SMTP_PASSWORD_ENV) or None,
        )


@dataclass(frozen=True)
class Settings:
    """Where one repository lives, the MLflow store it registers into, and how its jobs run.
    `smtp_env` holds SMTP settings given by configuration rather than the environment (the
    server's traitlets): they go to job processes only, which send the reports."""

    home: Path
    database_url: str
    artifact_root: Path | str  # a folder, or an `s3://bucket/prefix` URI (`artifact_root_setting`)
    mlflow_tracking_uri: str
    mlflow_registry_uri: str | None = None
    max_jobs: int | None = None  # None: SPARKSERVE_MAX_JOBS, read when jobs run
    smtp_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        mlflow_tracking_uri: str | None = None,
        max_jobs: int | None = None,
        smtp: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Settings from explicit values, then the environment, then the embedded defaults.
        `smtp`: SMTP settings by environment variable name (None values left out)."""
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        artifact_root = env.get(ARTIFACT_ROOT_ENV)
        return cls(
            home=home_path,
            database_url=database_url
            or env.get(DATABASE_URL_ENV)
            or _sqlite_url(home_path / "repository.db"),
            artifact_root=(
                artifact_root_setting(artifact_root) if artifact_root else home_path / "artifacts"
            ),
            mlflow_tracking_uri=mlflow_tracking_uri
            or env.get(TRACKING_URI_ENV)
            or _sqlite_url(home_path / "mlflow.db"),
            mlflow_registry_uri=env.get(REGISTRY_URI_ENV) or None,
            max_jobs=max_jobs,
            smtp_env={
                name: str(value) for name, value in (smtp or {}).items() if value is not None
            },
        )

    @property
    def mlflow_registry(self) -> str:
        """Which MLflow registry Register writes to, as a registration records it (no
        credentials): users of one repository may each have their own, where `models:/NAME/N`
        means a different model."""
        return safe_uri(self.mlflow_registry_uri or self.mlflow_tracking_uri)

    def repository_env(self) -> dict[str, str]:
        """The environment that makes a child process open the same repository."""
        env = {
            HOME_ENV: str(self.home),
            DATABASE_URL_ENV: self.database_url,
            ARTIFACT_ROOT_ENV: str(self.artifact_root),
            TRACKING_URI_ENV: self.mlflow_tracking_uri,
        }
        if self.mlflow_registry_uri:
            env[REGISTRY_URI_ENV] = self.mlflow_registry_uri
        return env

    def job_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """A job process's environment: ours, the configured SMTP settings (a job sends its
        own report), and the repository's settings."""
        base = os.environ if environ is None else environ
        return {**base, **self.smtp_env, **self.repository_env()}

    def smtp(self, environ: Mapping[str, str] | None = None) -> SmtpSettings | None:
        """The SMTP settings of the configuration over the environment's, None without a host."""
        base = os.environ if environ is None else environ
        return SmtpSettings.from_env({**base, **self.smtp_env})


def artifact_root_setting(value: str) -> Path | str:
    """SPARKSERVE_ARTIFACT_ROOT: a folder (resolved), or `s3://BUCKET[/PREFIX]` kept as a URI
    without its trailing slash (any S3-compatible endpoint: boto3's own variables say which)."""
    text = value.strip()
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme is None:
        return Path(text).expanduser().resolve()
    if scheme.group(1).lower() != "s3":
        raise InvalidInput(
            f"{ARTIFACT_ROOT_ENV} must be a folder or an s3://BUCKET/PREFIX URI, got {text!r}."
        )
    bucket, _, prefix = text[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise InvalidInput(
            f"{ARTIFACT_ROOT_ENV}: {bucket!r} is not a bucket name (3 to 63 lower-case letters, "
            f"digits, '.' and '-'); write s3://BUCKET/PREFIX, got {text!r}."
        )
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def max_jobs_setting(value: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """How many jobs may run at once: `value`, else SPARKSERVE_MAX_JOBS, else 2."""
    if value is None:
        text = (os.environ if environ is None else environ).get(MAX_JOBS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_JOBS
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(
                f"{MAX_JOBS_ENV} must be a whole number of jobs (1 or more), got {text!r}."
            ) from None
    if value < 1:
        raise InvalidInput(f"At least one job must be allowed to run at once, not {value}.")
    return value


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who this process acts for: SPARKSERVE_USER, else the OS user ('' when it has no name,
    as in a container run under a bare uid)."""
    import getpass

    named = (os.environ if environ is None else environ).get(USER_ENV, "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry for the uid
        return ""


def without_secrets(
    environ: Mapping[str, str] | None = None, *, keep: tuple[str, ...] = ()
) -> dict[str, str]:
    """The environment less every secret but those in `keep`: for a process that runs
    someone's model (an endpoint) or lives longer than its callers (the warm scorer)."""
    base = os.environ if environ is None else environ
    return {name: value for name, value in base.items() if name not in SECRET_ENVS or name in keep}


def _sqlite_url(path: Path) -> str:
    # URL.create quotes what a plain f-string would let through ('?' in a folder name).
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=str(path)).render_as_string()


def safe_uri(uri: str) -> str:
    """A URI or SQLAlchemy URL with its password masked, for messages and status output."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unreadable URI>"
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
