"""Request bodies checked at the boundary: each parser checks a decoded JSON body against its
schema in openapi.yaml (`shapes`, the one declaration of every shape) and turns it into the
arguments of one core call. What a schema cannot say (one of two fields, rows as long as
the columns) is checked here; values (names, tags, workflow settings) by the core."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import shapes
from ..deploy.targets import get_target
from ..errors import InvalidInput, SparkserveError

# The "try it" form scores a few rows in the server: bounded so that no request can hold it
# for long. Files go through jobs.
MAX_SCORE_ROWS = 1000
MAX_SCORE_COLUMNS = 10_000
MAX_SCORE_BYTES = 4 << 20  # parsing holds the interpreter: a few MB parse in well under 0.1 s
MAX_BODY_BYTES = 16 << 20


class InvalidJson(InvalidInput):
    code = "INVALID_JSON"


class InvalidBody(InvalidInput):
    code = "INVALID_BODY"


class TooManyRows(SparkserveError):
    code = "TOO_MANY_ROWS"
    http_status = 413


class TooManyColumns(SparkserveError):
    code = "TOO_MANY_COLUMNS"
    http_status = 413


class BodyTooLarge(SparkserveError):
    code = "BODY_TOO_LARGE"
    http_status = 413


def check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise BodyTooLarge(
            f"The request body has {len(body):,} bytes, more than the {max_bytes:,} this route "
            "takes: score a file with a job (POST jobs) instead."
        )


def decode(body: bytes) -> Any:
    if not body.strip():
        raise InvalidJson("The request needs a JSON body.")
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidJson(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise InvalidJson("The request body is not valid JSON: it is nested too deeply.") from None


def _not_json(constant: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have.
    raise ValueError(f"{constant} is not a JSON value")


def checked(schema: str, body: Any) -> dict[str, Any]:
    """The body's members, checked against the spec's `schema`; null ones left out."""
    shapes.check(schema, body, error=InvalidBody)
    return {name: value for name, value in body.items() if value is not None}


@dataclass(frozen=True)
class ImportRequest:
    source: str
    name: str
    description: str = ""
    tags: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None

    @classmethod
    def parse(cls, body: Any) -> ImportRequest:
        return cls(**checked("ImportRequest", body))


def alias_version(body: Any) -> int:
    return int(checked("AliasRequest", body)["version"])  # 3.0 is an integer in JSON too


@dataclass(frozen=True)
class DeployRequest:
    ref: str
    target: str
    options: dict[str, Any]  # checked by the target's own option model
    register: bool = False

    @classmethod
    def parse(cls, body: Any) -> DeployRequest:
        found = checked("DeployRequest", body)  # `ref`, or `name` and `version`: the spec says
        ref = found["ref"] if "ref" in found else f"{found['name']}:{int(found['version'])}"
        target = get_target(found.get("target", "local"))
        target.parse_options(found.get("options"), error=InvalidBody)  # a bad shape: 400 now
        return cls(
            ref=ref,
            target=target.name,
            options=found.get("options", {}),
            register=found.get("register", False),
        )


@dataclass(frozen=True)
class ScoreRequest:
    frame: Any  # a pandas DataFrame
    keep_columns: list[str] | None
    prediction_column: str

    @classmethod
    def parse(cls, body: Any) -> ScoreRequest:
        found = checked("ScoreRequest", body)
        if ("dataframe_split" in found) == ("dataframe_records" in found):
            raise InvalidBody(
                "The score request holds its rows in one of 'dataframe_split' or "
                "'dataframe_records'."
            )
        if "dataframe_split" in found:
            frame = _split_frame(found["dataframe_split"])
        else:
            frame = _records_frame(found["dataframe_records"])
        return cls(frame, found.get("keep_columns"), found.get("prediction_column", "prediction"))


def _check_rows(count: int) -> None:
    if count > MAX_SCORE_ROWS:
        raise TooManyRows(
            f"{count} rows is more than the {MAX_SCORE_ROWS} this form scores at once: score "
            "a file with a job (POST jobs) instead."
        )
    if count == 0:
        raise InvalidBody("There are no rows to score.")


def _check_columns(count: int) -> None:
    if count > MAX_SCORE_COLUMNS:
        raise TooManyColumns(
            f"{count:,} columns is more than the {MAX_SCORE_COLUMNS:,} this form scores: score "
            "a file with a job (POST jobs) instead."
        )


def _split_frame(split: dict[str, Any]) -> Any:
    import pandas as pd

    columns, rows = split["columns"], split["data"]
    _check_columns(len(columns))
    _check_rows(len(rows))
    for index, row in enumerate(rows):
        if len(row) != len(columns):
            raise InvalidBody(
                f"Row {index} of dataframe_split must be a list of {len(columns)} values, one "
                "per column."
            )
    return pd.DataFrame(rows, columns=columns)


def _records_frame(records: list[Any]) -> Any:
    import pandas as pd

    _check_rows(len(records))
    _check_columns(len({key for record in records for key in record}))
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class WorkflowRequest:
    name: str | None
    spec: dict[str, Any] | None  # settings, checked by the workflows core

    @classmethod
    def parse(cls, body: Any, *, creating: bool) -> WorkflowRequest:
        found = checked("WorkflowCreate" if creating else "WorkflowUpdate", body)
        return cls(found.get("name"), found.get("spec"))


def job_spec(body: Any) -> dict[str, Any]:
    return checked("JobRequest", body)["spec"]
