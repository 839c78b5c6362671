"""Exceptions that carry a message a user can act on.

Every face translates them the same way: the CLI prints the message, the REST API answers
`{"error": code, "message": message}` with `http_status`, the magics raise a UsageError.
"""

from __future__ import annotations


class SparkserveError(Exception):
    """Base of every error that is the user's to fix (or to read), never a bug."""

    code = "SPARKSERVE_ERROR"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class RepositoryTooNew(SparkserveError):
    """The database was written by a newer release than this one."""

    code = "REPOSITORY_TOO_NEW"
    http_status = 500
