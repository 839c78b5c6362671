"""The Sparkflows way of executing a workflow, parsed and checked.

A REST call `workflow/execute` carries `{workflowId, programParameters, sparkConfig, libJars,
emailOnSuccess, emailOnFailure}`:

- `programParameters`: `--key value` or `--key=value` pairs overriding the workflow's settings
  for this run, such as `--input /data/may.csv --output /out/may.parquet --engine spark`
  (shell quoting applies; keys also written with `_` or in camelCase);
- `sparkConfig`: `key=value` Spark settings separated by spaces, commas or new lines, such as
  `spark.executor.memory=4g spark.master=local[2]`; quote a value holding one of those;
- `libJars`: comma-separated jar paths added to the Spark session;
- `emailOnSuccess` / `emailOnFailure`: comma-separated addresses the job report goes to.

`execution_request` checks all of it, so that every face is a thin translation.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput
from .definitions import WorkflowSpec, spark_settings, split_list, workflow_number
from .email import parse_addresses

# --key in programParameters -> WorkflowSpec field
PROGRAM_PARAMETERS = {
    "model": "model",
    "input": "input",
    "output": "output",
    "input-format": "input_format",
    "output-format": "output_format",
    "format": "output_format",
    "keep-columns": "keep_columns",
    "engine": "engine",
    "prediction-column": "prediction_column",
}
_KEYS = {re.sub(r"[-_]", "", key): name for key, name in PROGRAM_PARAMETERS.items()}
REQUEST_FIELDS = (
    "workflowId",
    "programParameters",
    "sparkConfig",
    "libJars",
    "emailOnSuccess",
    "emailOnFailure",
)


def parse_program_parameters(text: str | None) -> dict[str, str]:
    """`--input a.csv --keep-columns id,x1 --engine=spark` -> {"input": "a.csv", ...}: the
    workflow settings to override, by WorkflowSpec field name (values still unchecked)."""
    if text is None:
        return {}
    if not isinstance(text, str):
        raise InvalidInput(
            f"programParameters is a string such as '--input a.csv --output b.parquet', got "
            f"{type(text).__name__}."
        )
    try:
        tokens = shlex.split(text)
    except ValueError as error:  # an unclosed quote
        raise InvalidInput(f"programParameters cannot be read: {error}.") from None
    known = ", ".join(f"--{key}" for key in PROGRAM_PARAMETERS)
    found: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or token == "--":
            raise InvalidInput(
                f"programParameters: expected --KEY VALUE, got {token!r} (known keys: {known})."
            )
        key, equals, value = token[2:].partition("=")
        index += 1
        if not equals:
            if index == len(tokens) or tokens[index].startswith("--"):
                raise InvalidInput(f"programParameters: --{key} has no value.")
            value = tokens[index]
            index += 1
        name = _KEYS.get(re.sub(r"[-_]", "", key).lower())
        if name is None:
            raise InvalidInput(f"programParameters: unknown key --{key}; known keys: {known}.")
        if name in found:
            raise InvalidInput(f"programParameters: --{key} is given twice.")
        found[name] = value
    return found


def parse_spark_config(value: str | Mapping[str, Any] | None) -> dict[str, str]:
    """`spark.executor.memory=4g, spark.master="local[2]"` -> {"spark.executor.memory": "4g",
    "spark.master": "local[2]"}. A mapping is taken as it is (values made text)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return spark_settings(value)
    if not isinstance(value, str):
        raise InvalidInput(
            f"sparkConfig is a string of key=value settings, got {type(value).__name__}."
        )
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace_split = True
    lexer.whitespace += ","
    lexer.commenters = ""
    try:
        items = list(lexer)
    except ValueError as error:
        raise InvalidInput(f"sparkConfig cannot be read: {error}.") from None
    config: dict[str, str] = {}
    for item in items:
        key, equals, setting = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise InvalidInput(
                f"sparkConfig: {item!r} is not key=value (settings are separated by spaces, "
                "commas or new lines; quote a value that holds one, such as "
                'spark.jars="a.jar,b.jar").'
            )
        if key in config:
            raise InvalidInput(f"sparkConfig: {key} is given twice.")
        config[key] = setting
    return config


def parse_lib_jars(value: str | list[str] | None) -> tuple[str, ...]:
    """`/opt/a.jar, /opt/b.jar` (or a list) -> ("/opt/a.jar", "/opt/b.jar")."""
    jars = split_list(value, "libJars")
    bad = [jar for jar in jars if any(c.isspace() for c in jar)]
    if bad:
        raise InvalidInput(
            f"libJars: {bad[0]!r} is not one path: separate jars with commas, not spaces."
        )
    return jars


@dataclass(frozen=True)
class ExecutionRequest:
    """One execution of a saved workflow, with this run's overrides."""

    workflow_id: int
    overrides: Mapping[str, str] = field(default_factory=dict)  # WorkflowSpec field -> value
    spark_config: Mapping[str, str] = field(default_factory=dict)
    lib_jars: tuple[str, ...] = ()
    email_on_success: tuple[str, ...] | None = None  # None: the workflow's own
    email_on_failure: tuple[str, ...] | None = None

    def apply(self, spec: WorkflowSpec) -> WorkflowSpec:
        """The spec this run executes: overrides win, Spark settings are merged over the
        workflow's, jars are added to the workflow's."""
        changes: dict[str, Any] = dict(self.overrides)
        if self.spark_config:
            changes["spark_config"] = {**spec.spark_config, **self.spark_config}
        if self.lib_jars:
            changes["lib_jars"] = list(dict.fromkeys([*spec.lib_jars, *self.lib_jars]))
        if self.email_on_success is not None:
            changes["email_on_success"] = list(self.email_on_success)
        if self.email_on_failure is not None:
            changes["email_on_failure"] = list(self.email_on_failure)
        return spec.changed(changes) if changes else spec

    def to_dict(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }


def execution_request(body: object) -> ExecutionRequest:
    """Check a Sparkflows execute body; only workflowId is required."""
    if not isinstance(body, Mapping):
        raise InvalidInput(
            f"The request body must be a JSON object with {', '.join(REQUEST_FIELDS)}."
        )
    unknown = sorted(set(body) - set(REQUEST_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown field(s) {', '.join(map(repr, unknown))}: the fields are "
            f"{', '.join(REQUEST_FIELDS)}."
        )
    if body.get("workflowId") in (None, ""):
        raise InvalidInput("workflowId is required: the id of the workflow to execute.")

    def addresses(name: str) -> tuple[str, ...] | None:
        value = body.get(name)
        # Sparkflows clients send "" for a field they do not use: the workflow's own then.
        return None if value in (None, "") else parse_addresses(value, name)

    return ExecutionRequest(
        workflow_id=workflow_number(body["workflowId"]),
        overrides=parse_program_parameters(body.get("programParameters")),
        spark_config=parse_spark_config(body.get("sparkConfig")),
        lib_jars=parse_lib_jars(body.get("libJars")),
        email_on_success=addresses("emailOnSuccess"),
        email_on_failure=addresses("emailOnFailure"),
    )
