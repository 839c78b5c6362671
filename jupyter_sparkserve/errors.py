"""Exceptions that carry a message a user can act on, and what to do about it.

A core error says what is wrong in plain words and, where there is one, a structured remedy:
an action and its arguments (`Remedy("register", ref="iris:2")`). The core never words a
remedy as a command: each face does, for its audience. The CLI prints `sparkserve register
iris:2`, the magics `%sfregister iris:2`, the REST API returns the remedy as data (next to
`{"error": code, "message": message}`) so the sidebar can offer a button. `REMEDIES` lists
every action a remedy may name; each face words every one of them (a test holds them to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# action -> the arguments it takes
REMEDIES: dict[str, tuple[str, ...]] = {
    "register": ("ref",),  # register the version in MLflow
    "reregister": ("ref",),  # register it again, as a new MLflow version
    "deploy": ("ref", "register"),  # deploy it (register: register it first)
    "undeploy": ("deployment",),  # stop a deployment
    "list_deployments": (),
    "cancel_job": ("job",),
    "list_jobs": (),
    "list_workflows": (),
    "import_model": ("source",),  # import an MLflow model into the repository
}


@dataclass(frozen=True)
class Remedy:
    action: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in REMEDIES:
            raise ValueError(f"Unknown remedy action {self.action!r}")
        unknown = set(self.args) - set(REMEDIES[self.action])
        if unknown:
            raise ValueError(f"Remedy {self.action!r} takes no {', '.join(sorted(unknown))}")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "args": dict(self.args)}


def remedy(action: str, **args: Any) -> Remedy:
    return Remedy(action, args)


class SparkserveError(Exception):
    """Base of every error that is the user's to fix (or to read), never a bug."""

    code = "SPARKSERVE_ERROR"
    http_status = 500

    def __init__(self, message: str, *, remedy: Remedy | None = None, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy
        # The request field at fault (`output`, a target option's name), where there is one:
        # the REST API answers it, and a dialog shows the message next to that field.
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The error as the REST API and `--json` answer it."""
        payload: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.remedy is not None:
            payload["remedy"] = self.remedy.to_dict()
        return payload


class InvalidInput(SparkserveError):
    code = "INVALID_INPUT"
    http_status = 400


class InvalidName(InvalidInput):
    code = "INVALID_NAME"


class InvalidReference(InvalidInput):
    code = "INVALID_REFERENCE"


class NotAnMLflowModel(InvalidInput):
    code = "NOT_AN_MLFLOW_MODEL"


class UnsupportedModel(InvalidInput):
    code = "UNSUPPORTED_MODEL"


class NotFound(SparkserveError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(SparkserveError):
    code = "CONFLICT"
    http_status = 409


class Cancelled(SparkserveError):
    """A run (a score or a build) stopped because someone asked it to."""

    code = "CANCELLED"
    http_status = 409


class NoSpaceForOutput(SparkserveError):
    """The output's file system is full (or the user's quota or file size limit is hit)."""

    code = "NO_SPACE_FOR_OUTPUT"
    http_status = 507


class RepositoryTooNew(SparkserveError):
    """The database was written by a newer release than this one."""

    code = "REPOSITORY_TOO_NEW"
    http_status = 500
