"""The Sparkflows way of executing a workflow, parsed and checked.

A REST call `workflow/execute` carries `{workflowId, programParameters, sparkConfig, libJars,
emailOnSuccess, emailOnFailure}`:

- `programParameters`: `--key value` or `--key=value` pairs overriding the workflow's settings
  for this run, such as `--input /data/may.csv --output /out/may.parquet --engine spark`
  (shell quoting applies; keys also written with `_` or in camelCase), and `--var NAME=VALUE`
  (repeatable) filling the workflow's `${NAME}` variables, such as
  `--var inputPath=/data/may.csv --var outputPath=/out/may.parquet`;
- `sparkConfig`: Spark settings separated by spaces, commas or new lines, written
  `key=value` (`spark.executor.memory=4g spark.master=local[2]`; quote a value holding a
  separator) or spark-submit style (`--executor-memory 4g --num-executors 3
  --conf spark.sql.shuffle.partitions=8 --jars a.jar,b.jar`), or both mixed; the jars
  (`--jars`, `spark.jars`) are added to libJars;
- `libJars`: comma-separated jar paths added to the Spark session;
- `emailOnSuccess` / `emailOnFailure`: comma-separated addresses the job report goes to.

`execution_request` checks all of it, so that every face is a thin translation.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import shapes
from ..errors import InvalidInput
from .definitions import (
    TEMPLATE_FIELDS,
    VARIABLE_NAME,
    WorkflowSpec,
    fill_template,
    spark_settings,
    split_list,
    workflow_number,
)
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
VARIABLE_KEY = "var"  # --var NAME=VALUE
# spark-submit options in sparkConfig -> the Spark setting each sets; and --conf KEY=VALUE
SPARK_SUBMIT_OPTIONS = {
    "--master": "spark.master",
    "--name": "spark.app.name",
    "--driver-memory": "spark.driver.memory",
    "--driver-cores": "spark.driver.cores",
    "--executor-memory": "spark.executor.memory",
    "--executor-cores": "spark.executor.cores",
    "--num-executors": "spark.executor.instances",
    "--jars": "spark.jars",
}
CONF_OPTION = "--conf"
_SPACES = " \t\r\n"


class ProgramParameters(NamedTuple):
    """programParameters read: settings to override (by WorkflowSpec field name, values still
    unchecked) and the values of the workflow's variables (`--var NAME=VALUE`)."""

    overrides: dict[str, str]
    variables: dict[str, str]


def parse_program_parameters(text: str | None) -> ProgramParameters:
    """`--input a.csv --keep-columns id,x1 --engine=spark --var day=may` ->
    ({"input": "a.csv", "keep_columns": "id,x1", "engine": "spark"}, {"day": "may"})."""
    if text is None:
        return ProgramParameters({}, {})
    if not isinstance(text, str):
        raise InvalidInput(
            f"programParameters is a string such as '--input a.csv --output b.parquet', got "
            f"{type(text).__name__}."
        )
    try:
        tokens = shlex.split(text)
    except ValueError as error:  # an unclosed quote
        raise InvalidInput(f"programParameters cannot be read: {error}.") from None
    known = ", ".join(f"--{key}" for key in PROGRAM_PARAMETERS) + f", --{VARIABLE_KEY} NAME=VALUE"
    found: dict[str, str] = {}
    variables: dict[str, str] = {}
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
        normal = re.sub(r"[-_]", "", key).lower()
        if normal == VARIABLE_KEY:
            name, is_set, setting = value.partition("=")
            if not is_set or not VARIABLE_NAME.fullmatch(name):
                raise InvalidInput(
                    f"programParameters: --{key} takes NAME=VALUE (NAME: letters, digits and _), "
                    f"such as --var inputPath=/data/may.csv; got {value!r}."
                )
            if name in variables:
                raise InvalidInput(f"programParameters: --var {name} is given twice.")
            variables[name] = setting
            continue
        name = _KEYS.get(normal)
        if name is None:
            raise InvalidInput(f"programParameters: unknown key --{key}; known keys: {known}.")
        if name in found:
            raise InvalidInput(f"programParameters: --{key} is given twice.")
        found[name] = value
    return ProgramParameters(found, variables)


def parse_spark_config(value: str | Mapping[str, Any] | None) -> dict[str, str]:
    """`spark.executor.memory=4g, --master local[2] --conf spark.x="a b"` ->
    {"spark.executor.memory": "4g", "spark.master": "local[2]", "spark.x": "a b"}: key=value
    settings and spark-submit options (SPARK_SUBMIT_OPTIONS, --conf) mixed, `--jars` as
    spark.jars. A mapping is taken as it is (values made text)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return spark_settings(value)
    if not isinstance(value, str):
        raise InvalidInput(
            f"sparkConfig is a string of key=value settings, got {type(value).__name__}."
        )
    try:
        tokens = _spark_config_tokens(value)
    except ValueError as error:
        raise InvalidInput(f"sparkConfig cannot be read: {error}.") from None
    config: dict[str, str] = {}
    written: dict[str, str] = {}  # setting -> as the user wrote it, to tell of a repeat
    index = 0
    while index < len(tokens):
        item = tokens[index]
        index += 1
        if item.startswith("--"):
            option, equals, argument = item.partition("=")
            if not equals:
                if index == len(tokens) or tokens[index].startswith("--"):
                    raise InvalidInput(f"sparkConfig: {option} has no value.")
                argument = tokens[index]
                index += 1
            key, setting = _spark_option(option, argument)
            item = f"{option} {argument}"
        else:
            key, setting = _key_value(item)
        if key in config:
            raise InvalidInput(
                f"sparkConfig: {key} is given twice ({written[key]!r} and {item!r})."
            )
        config[key] = setting
        written[key] = item
    return config


def _spark_config_tokens(text: str) -> list[str]:
    """`text` split like a shell line, except that commas also separate key=value settings,
    but not within an option or its value (`--jars a.jar,b.jar`, `--conf spark.x=a,b`)."""
    stream = io.StringIO(text)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens: list[str] = []
    while True:
        start = stream.tell()  # peek past the separators: does an option start here?
        while (char := stream.read(1)) and char in f"{_SPACES},":
            start = stream.tell()
        option = char == "-" and stream.read(1) == "-"
        stream.seek(start)
        option_value = bool(tokens) and tokens[-1].startswith("--") and "=" not in tokens[-1]
        lexer.whitespace = _SPACES if option or option_value else f"{_SPACES},"
        token = lexer.get_token()
        if token is None:
            return tokens
        tokens.append(token)


def _spark_option(option: str, argument: str) -> tuple[str, str]:
    """The Spark setting a spark-submit option sets: (`--executor-memory`, `4g`) ->
    (`spark.executor.memory`, `4g`)."""
    if option == CONF_OPTION:
        key, equals, setting = argument.partition("=")
        if not equals or not key.strip():
            raise InvalidInput(
                f"sparkConfig: {CONF_OPTION} {argument!r} is not KEY=VALUE, such as "
                f"{CONF_OPTION} spark.sql.shuffle.partitions=8."
            )
        return key.strip(), setting
    key = SPARK_SUBMIT_OPTIONS.get(option)
    if key is None:
        known = ", ".join([*SPARK_SUBMIT_OPTIONS, f"{CONF_OPTION} KEY=VALUE"])
        raise InvalidInput(
            f"sparkConfig: unknown option {option}; the spark-submit options understood are "
            f"{known}; anything else is written key=value, such as spark.driver.maxResultSize=2g."
        )
    return key, argument


def _key_value(item: str) -> tuple[str, str]:
    key, equals, setting = item.partition("=")
    key = key.strip()
    if not equals or not key:
        raise InvalidInput(
            f"sparkConfig: {item!r} is not key=value (settings are separated by spaces, "
            "commas or new lines; quote a value that holds one, such as "
            'spark.jars="a.jar,b.jar").'
        )
    return key, setting


def parse_lib_jars(value: str | list[str] | None, what: str = "libJars") -> tuple[str, ...]:
    """`/opt/a.jar, /opt/b.jar` (or a list) -> ("/opt/a.jar", "/opt/b.jar")."""
    jars = split_list(value, what)
    bad = [jar for jar in jars if any(c.isspace() for c in jar)]
    if bad:
        raise InvalidInput(
            f"{what}: {bad[0]!r} is not one path: separate jars with commas, not spaces."
        )
    return jars


@dataclass(frozen=True)
class ExecutionRequest:
    """One execution of a saved workflow, with this run's overrides and variables."""

    workflow_id: int
    overrides: Mapping[str, str] = field(default_factory=dict)  # WorkflowSpec field -> value
    variables: Mapping[str, str] = field(default_factory=dict)  # --var NAME=VALUE
    spark_config: Mapping[str, str] = field(default_factory=dict)
    lib_jars: tuple[str, ...] = ()
    email_on_success: tuple[str, ...] | None = None  # None: the workflow's own
    email_on_failure: tuple[str, ...] | None = None

    def apply(self, spec: WorkflowSpec) -> WorkflowSpec:
        """The spec this run executes: the workflow's variables filled, overrides win, Spark
        settings are merged over the workflow's, jars are added to the workflow's."""
        changes: dict[str, Any] = {**self._filled(spec), **self.overrides}
        if self.spark_config:
            changes["spark_config"] = {**spec.spark_config, **self.spark_config}
        if self.lib_jars:
            changes["lib_jars"] = list(dict.fromkeys([*spec.lib_jars, *self.lib_jars]))
        if self.email_on_success is not None:
            changes["email_on_success"] = list(self.email_on_success)
        if self.email_on_failure is not None:
            changes["email_on_failure"] = list(self.email_on_failure)
        return spec.changed(changes) if changes else spec

    def _filled(self, spec: WorkflowSpec) -> dict[str, str]:
        """The workflow's model, input and output that are not overridden, with `${NAME}`
        filled from --var and `$$` made `$` (those that change). A variable left without a
        --var, or a --var that no variable uses, is refused."""
        variables = spec.variables()
        templates = {
            name: getattr(spec, name) for name in TEMPLATE_FIELDS if name not in self.overrides
        }
        needed = dict.fromkeys(found for name in templates for found in variables[name])
        missing = [name for name in needed if name not in self.variables]
        if missing:
            wanted = " ".join(f"--var {name}=..." for name in missing)
            holders = ", ".join(
                f"its {name} is {text!r}"
                for name, text in templates.items()
                if set(variables[name]) & set(missing)
            )
            raise InvalidInput(
                f"Workflow {self.workflow_id} needs {wanted} in programParameters: {holders}."
            )
        unused = [name for name in self.variables if name not in needed]
        if unused:
            raise InvalidInput(self._unused_message(unused[0], variables))
        filled = {name: fill_template(text, self.variables) for name, text in templates.items()}
        return {name: text for name, text in filled.items() if text != templates[name]}

    def _unused_message(self, name: str, variables: Mapping[str, tuple[str, ...]]) -> str:
        replaced = [setting for setting in self.overrides if name in variables.get(setting, ())]
        if replaced:
            return (
                f"programParameters: --var {name} is not used: --{replaced[0]} replaces workflow "
                f"{self.workflow_id}'s {replaced[0]}, which holds ${{{name}}}."
            )
        known = ", ".join(dict.fromkeys(found for names in variables.values() for found in names))
        if not known:
            return (
                f"programParameters: --var {name} matches no ${{{name}}}: workflow "
                f"{self.workflow_id} has no variables."
            )
        return (
            f"programParameters: --var {name} matches no ${{{name}}} in workflow "
            f"{self.workflow_id}; its variables: {known}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }


def execution_request(body: object) -> ExecutionRequest:
    """Check a Sparkflows execute body (shaped as openapi.yaml's ExecuteRequest says); only
    workflowId is required, and a field sent as "" counts as not sent, as Sparkflows clients
    send it."""
    if isinstance(body, Mapping) and body.get("workflowId") in (None, ""):
        raise InvalidInput("workflowId is required: the id of the workflow to execute.")
    shapes.check("ExecuteRequest", body)

    def addresses(name: str) -> tuple[str, ...] | None:
        value = body.get(name)
        # Sparkflows clients send "" for a field they do not use: the workflow's own then.
        return None if value in (None, "") else parse_addresses(value, name)

    parameters = parse_program_parameters(body.get("programParameters"))
    spark_config = parse_spark_config(body.get("sparkConfig"))
    jars = [
        *parse_lib_jars(body.get("libJars")),
        # --jars or spark.jars: added to the workflow's jars like libJars, not replacing them
        *parse_lib_jars(spark_config.pop("spark.jars", None), "sparkConfig spark.jars"),
    ]
    return ExecutionRequest(
        workflow_id=workflow_number(body["workflowId"]),
        overrides=parameters.overrides,
        variables=parameters.variables,
        spark_config=spark_config,
        lib_jars=tuple(dict.fromkeys(jars)),
        email_on_success=addresses("emailOnSuccess"),
        email_on_failure=addresses("emailOnFailure"),
    )
