"""Request bodies checked at the boundary: each parser turns decoded JSON into the arguments
of one core call, or raises a 400 that says what to fix. Values (names, tags, workflow
settings, Sparkflows fields) are checked by the core; here only the shape is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, SparkserveError

MAX_SCORE_ROWS = 1000  # the "try it" form scores a few rows; files go through jobs

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


class InvalidJson(InvalidInput):
    code = "INVALID_JSON"


class InvalidBody(InvalidInput):
    code = "INVALID_BODY"


class TooManyRows(SparkserveError):
    code = "TOO_MANY_ROWS"
    http_status = 413


@dataclass(frozen=True)
class Field:
    kind: str  # a JSON type name, a key of _JSON_TYPES
    hint: str  # what to send, for the message when it is missing or wrong
    required: bool = False  # an optional field may also be null, meaning left out


def decode(body: bytes) -> Any:
    if not body.strip():
        raise InvalidJson("The request needs a JSON body.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidJson(f"The request body is not valid JSON: {error}.") from None


def fields(value: Any, spec: Mapping[str, Field], what: str) -> dict[str, Any]:
    """The members of a JSON object, each of its declared type; unknown ones are refused."""
    names = ", ".join(spec)
    if not isinstance(value, dict):
        raise InvalidBody(f"The {what} must be a JSON object with the fields {names}.")
    unknown = sorted(set(value) - set(spec))
    if unknown:
        raise InvalidBody(
            f"Unknown field(s) {', '.join(map(repr, unknown))} in the {what}: the fields are "
            f"{names}."
        )
    found: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in value or (value[name] is None and not field.required):
            if field.required:
                raise InvalidBody(f"The {what} needs {name!r}: {field.hint}.")
            continue
        member = value[name]
        # bool is an int in Python, never in JSON
        wrong_bool = isinstance(member, bool) and field.kind in ("integer", "number")
        if member is None or wrong_bool or not isinstance(member, _JSON_TYPES[field.kind]):
            raise InvalidBody(
                f"{name!r} in the {what} must be {_article(field.kind)}: {field.hint}; got "
                f"{_json_type(member)}."
            )
        found[name] = member
    return found


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, types in _JSON_TYPES.items():
        if isinstance(value, types) and not (isinstance(value, bool) and kind != "boolean"):
            return _article(kind)
    return type(value).__name__


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ImportRequest:
    source: str
    name: str
    description: str = ""
    tags: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None

    @classmethod
    def parse(cls, body: Any) -> ImportRequest:
        return cls(
            **fields(
                body,
                {
                    "source": Field(
                        "string",
                        "the model to import: a folder, runs:/..., models:/... or NAME:VERSION",
                        required=True,
                    ),
                    "name": Field("string", "the repository model name", required=True),
                    "description": Field("string", "what the model is"),
                    "tags": Field("object", 'tags such as {"team": "risk"}'),
                    "metrics": Field("object", 'metrics such as {"auc": 0.91}'),
                },
                "import request",
            )
        )


def alias_version(body: Any) -> int:
    found = fields(
        body,
        {"version": Field("integer", "the version number the alias points at", required=True)},
        "alias request",
    )
    return found["version"]


@dataclass(frozen=True)
class DeployRequest:
    ref: str
    target: str
    host: str = "127.0.0.1"
    port: int | None = None
    token: str | None = None

    @classmethod
    def parse(cls, body: Any) -> DeployRequest:
        found = fields(
            body,
            {
                "ref": Field("string", "the version to deploy, such as churn:3 or churn@champion"),
                "name": Field("string", "the model name (with version)"),
                "version": Field("integer", "the version number (with name)"),
                "target": Field("string", "where to deploy: local"),
                "options": Field("object", "the target's settings: host, port, token"),
            },
            "deploy request",
        )
        by_name = "name" in found or "version" in found
        if ("ref" in found) == by_name:
            raise InvalidBody(
                "The deploy request names the version either as 'ref' (such as churn:3) or as "
                "'name' and 'version': one of the two."
            )
        if by_name and not ("name" in found and "version" in found):
            raise InvalidBody("The deploy request needs both 'name' and 'version'.")
        ref = found["ref"] if "ref" in found else f"{found['name']}:{found['version']}"
        options = fields(
            found.get("options", {}),
            {
                "host": Field("string", "the address the endpoint binds (default 127.0.0.1)"),
                "port": Field("integer", "the endpoint's port (default: a free one)"),
                "token": Field("string", "a bearer token the endpoint will require"),
            },
            "deploy options",
        )
        return cls(ref=ref, target=found.get("target", "local"), **options)


@dataclass(frozen=True)
class ScoreRequest:
    frame: Any  # a pandas DataFrame
    keep_columns: list[str] | None
    prediction_column: str

    @classmethod
    def parse(cls, body: Any) -> ScoreRequest:
        found = fields(
            body,
            {
                "dataframe_split": Field("object", '{"columns": [...], "data": [[...], ...]}'),
                "dataframe_records": Field("array", '[{"column": value, ...}, ...]'),
                "keep_columns": Field("array", "input columns copied to the answer"),
                "prediction_column": Field("string", "the name of the prediction column"),
            },
            "score request",
        )
        if ("dataframe_split" in found) == ("dataframe_records" in found):
            raise InvalidBody(
                "The score request holds its rows in one of 'dataframe_split' or "
                "'dataframe_records'."
            )
        keep = found.get("keep_columns")
        if keep is not None and not all(isinstance(name, str) for name in keep):
            raise InvalidBody("'keep_columns' must be a list of column names.")
        if "dataframe_split" in found:
            frame = _split_frame(found["dataframe_split"])
        else:
            frame = _records_frame(found["dataframe_records"])
        return cls(frame, keep, found.get("prediction_column", "prediction"))


def _check_rows(count: int) -> None:
    if count > MAX_SCORE_ROWS:
        raise TooManyRows(
            f"{count} rows is more than the {MAX_SCORE_ROWS} this form scores at once: score "
            "a file with a job (POST jobs) instead."
        )
    if count == 0:
        raise InvalidBody("There are no rows to score.")


def _split_frame(split: dict[str, Any]) -> Any:
    import pandas as pd

    found = fields(
        split,
        {
            "columns": Field("array", "the column names", required=True),
            "data": Field("array", "the rows, each a list of values", required=True),
        },
        "dataframe_split",
    )
    columns, rows = found["columns"], found["data"]
    if not all(isinstance(name, str) for name in columns):
        raise InvalidBody("dataframe_split 'columns' must be a list of column names.")
    _check_rows(len(rows))
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidBody(
                f"Row {index} of dataframe_split must be a list of {len(columns)} values, one "
                "per column."
            )
    return pd.DataFrame(rows, columns=columns)


def _records_frame(records: list[Any]) -> Any:
    import pandas as pd

    _check_rows(len(records))
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidBody(f"Record {index} of dataframe_records must be an object.")
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class WorkflowRequest:
    name: str | None
    spec: dict[str, Any] | None  # settings, checked by the workflows core

    @classmethod
    def parse(cls, body: Any, *, creating: bool) -> WorkflowRequest:
        found = fields(
            body,
            {
                "name": Field("string", "what the workflow is for"),
                "spec": Field(
                    "object",
                    "its settings: model, input, output and optional ones such as engine",
                    required=creating,
                ),
            },
            "workflow",
        )
        return cls(found.get("name"), found.get("spec"))


def job_spec(body: Any) -> dict[str, Any]:
    found = fields(
        body,
        {"spec": Field("object", "what to score: model, input, output, ...", required=True)},
        "job request",
    )
    return found["spec"]
