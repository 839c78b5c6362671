"""Score workflows: saved definitions of what to score with which model, run again and again
as jobs.

A workflow has an integer id, an optional name and a `WorkflowSpec`, checked whenever one is
made (from keyword arguments, a JSON body, the command line) so that a stored workflow is
always runnable as far as can be told without reading the data. Paths (input, output, jars,
a model folder) are stored absolute, resolved against the current folder of the process that
creates or updates the workflow: a workflow means the same files wherever it runs.

A saved workflow's model, input and output may hold variables, `${NAME}` (NAME: letters,
digits and `_`, not starting with a digit; a literal `$` is written `$$`), filled for each run
by `--var NAME=VALUE` in programParameters (see parameters.py). Checks that need the value
(the model reference, a path starting with a variable made absolute) wait for the run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import delete, insert, select, update

from .. import shapes
from ..errors import InvalidInput, NotFound, remedy
from ..repository import ModelRef, ModelRepository
from ..repository import database as db
from ..scoring.batch import FORMATS, BatchResult, ProgressCallback
from ..scoring.engines import check_spark_settings, engines
from ..scoring.offline import score
from . import tables
from .email import parse_addresses

if TYPE_CHECKING:
    from ..confinement import Confinement

MAX_WORKFLOW_NAME_LENGTH = 128
ALL_COLUMNS = "*"  # keep_columns written as text: every input column
TEMPLATE_FIELDS = ("model", "input", "output")  # the settings that may hold ${NAME}
_DOLLAR = re.compile(r"\$\$|\$\{(?P<name>[^}]*)\}|\$")  # $$, ${...}, or a lone $
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class WorkflowSpec:
    """What a score run does. `keep_columns` None keeps every input column, () none."""

    kind: ClassVar[str] = "score"  # the kind of job that runs it
    model: str
    input: str
    output: str
    input_format: str | None = None
    output_format: str | None = None
    keep_columns: tuple[str, ...] | None = None
    engine: str = "local"
    prediction_column: str = "prediction"
    spark_config: Mapping[str, str] = field(default_factory=dict)
    lib_jars: tuple[str, ...] = ()
    email_on_success: tuple[str, ...] = ()
    email_on_failure: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Normalise in place (the dataclass is frozen only to its users), then check.
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        set_("model", _text(self.model, "model", "a model reference such as churn@champion"))
        if not _has_variables(self.model):
            ModelRef.parse(self.model)  # a malformed reference fails now, not in the job
        set_("input", _path(_text(self.input, "input", "a file, folder or glob to score"), "input"))
        set_("output", _path(_text(self.output, "output", "a file or folder to write"), "output"))
        if _same_path(self.input, self.output):
            raise InvalidInput(
                f"The output {self.output} is the input: choose another output.", field="output"
            )
        set_("input_format", _format(self.input_format, "input"))
        set_("output_format", _format(self.output_format, "output"))
        set_("keep_columns", _columns(self.keep_columns))
        known = engines()
        if self.engine not in known:
            raise InvalidInput(
                f"Unknown engine {self.engine!r}: use one of {', '.join(known)}.", field="engine"
            )
        set_(
            "prediction_column",
            _text(self.prediction_column, "prediction_column", "the name of the output column"),
        )
        if self.keep_columns and self.prediction_column in self.keep_columns:
            raise InvalidInput(
                f"The prediction column {self.prediction_column!r} is also a kept input column: "
                "choose another prediction column name.",
                field="prediction_column",
            )
        set_("spark_config", spark_settings(self.spark_config))
        set_("lib_jars", split_list(self.lib_jars, "lib_jars"))
        check_spark_settings(self.engine, self.spark_config, self.lib_jars)
        set_("email_on_success", parse_addresses(self.email_on_success, "email_on_success"))
        set_("email_on_failure", parse_addresses(self.email_on_failure, "email_on_failure"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        """A spec from JSON-like data (a REST body, a stored row), shaped as openapi.yaml's
        WorkflowSettings says; a missing or null optional setting takes its default."""
        shapes.check("WorkflowSettings", data)
        missing = [name for name in ("model", "input", "output") if data.get(name) is None]
        if missing:
            raise InvalidInput(f"A score run needs {', '.join(missing)}.", field=missing[0])
        return cls(**{name: value for name, value in data.items() if value is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input": self.input,
            "output": self.output,
            "input_format": self.input_format,
            "output_format": self.output_format,
            "keep_columns": None if self.keep_columns is None else list(self.keep_columns),
            "engine": self.engine,
            "prediction_column": self.prediction_column,
            "spark_config": dict(self.spark_config),
            "lib_jars": list(self.lib_jars),
            "email_on_success": list(self.email_on_success),
            "email_on_failure": list(self.email_on_failure),
        }

    def changed(self, changes: Mapping[str, Any]) -> WorkflowSpec:
        """This spec with some settings changed (None resets one to its default), checked."""
        return WorkflowSpec.from_dict({**self.to_dict(), **changes})

    def variables(self) -> dict[str, tuple[str, ...]]:
        """The variables each of model, input and output holds, in order, each once:
        {"input": ("inputPath",), ...}. A `$` that is neither `${NAME}` nor `$$` is refused."""
        return {name: template_variables(getattr(self, name), name) for name in TEMPLATE_FIELDS}

    def absolute(self) -> WorkflowSpec:
        """Relative paths made absolute against the current folder (URIs stay as they are;
        a model or path starting with a variable is left for the run to resolve)."""
        return dataclasses.replace(
            self,
            model=_absolute_model(self.model),
            input=_absolute(self.input),
            output=_absolute(self.output),
            lib_jars=tuple(_absolute(jar) for jar in self.lib_jars),
        )


def template_variables(text: str, what: str) -> tuple[str, ...]:
    """The `${NAME}` variables in `text` (the workflow's `what`), in order, each once."""
    names: dict[str, None] = {}
    for match in _DOLLAR.finditer(text):
        name = match["name"]
        if match[0] == "$":
            raise InvalidInput(
                f"The workflow's {what} {text!r} has a $ that is neither ${{NAME}} nor $$: write "
                "${NAME} for a variable filled by --var NAME=VALUE, $$ for a literal $."
            )
        if name is None:  # $$
            continue
        if not VARIABLE_NAME.fullmatch(name):
            raise InvalidInput(
                f"The workflow's {what} {text!r} has an invalid variable ${{{name}}}: a name is "
                "letters, digits and _, not starting with a digit (write $$ for a literal $)."
            )
        names[name] = None
    return tuple(names)


def fill_template(text: str, values: Mapping[str, str]) -> str:
    """`text`, checked by `template_variables`, with each `${NAME}` replaced by values[NAME]
    (taken as it is) and each `$$` by `$`."""

    def replace(match: re.Match[str]) -> str:
        return "$" if match["name"] is None else values[match["name"]]

    return _DOLLAR.sub(replace, text)


def run_spec(
    spec: WorkflowSpec,
    *,
    repository: ModelRepository,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    writer_tag: str | None = None,
) -> BatchResult:
    """Score what `spec` says, in this process (a job's process, or `sparkserve score`)."""
    return score(
        **score_arguments(spec),
        repository=repository,
        progress=progress,
        cancel=cancel,
        writer_tag=writer_tag,
    )


def score_arguments(spec: WorkflowSpec) -> dict[str, Any]:
    """`spec` as the arguments of `offline.score` and `offline.prepare`: the run and the
    check before it (`preflight.check_score`) read a spec the same way."""
    return {
        "model": spec.model,
        "input": spec.input,
        "output": spec.output,
        "engine": spec.engine,
        "input_format": spec.input_format,
        "output_format": spec.output_format,
        "keep_columns": None if spec.keep_columns is None else list(spec.keep_columns),
        "prediction_column": spec.prediction_column,
        "spark_config": dict(spec.spark_config) or None,
        "lib_jars": list(spec.lib_jars) or None,
    }


@dataclass(frozen=True)
class Workflow:
    id: int
    name: str
    spec: WorkflowSpec
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "spec": self.spec.to_dict(),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class Workflows:
    """Create, list, read, update and delete score workflows."""

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def create(
        self,
        spec: WorkflowSpec | Mapping[str, Any],
        *,
        name: str = "",
        confinement: Confinement | None = None,
    ) -> Workflow:
        """Save a workflow; `confinement`: the folders its paths must stay in (a server's)."""
        spec = _saved(_confined(_spec(spec), confinement))
        now = db.utcnow()
        with db.write_transaction(self.repository.engine) as conn:
            workflow_id = conn.execute(
                insert(tables.workflows).values(
                    name=_name(name), spec=spec.to_dict(), created_at=now, updated_at=now
                )
            ).inserted_primary_key[0]
        return self.get(workflow_id)

    def list(self) -> list[Workflow]:
        with self.repository.engine.connect() as conn, conn.begin():
            rows = conn.execute(select(tables.workflows).order_by(tables.workflows.c.id)).all()
        return [_workflow(row) for row in rows]

    def get(self, workflow_id: int | str) -> Workflow:
        number = workflow_number(workflow_id)
        with self.repository.engine.connect() as conn, conn.begin():
            row = conn.execute(
                select(tables.workflows).where(tables.workflows.c.id == number)
            ).first()
        if row is None:
            raise NotFound(f"No workflow {number}.", remedy=remedy("list_workflows"))
        return _workflow(row)

    def update(
        self,
        workflow_id: int | str,
        changes: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        confinement: Confinement | None = None,
    ) -> Workflow:
        """Change some settings (a None value resets one to its default) and/or the name."""
        current = self.get(workflow_id)
        spec = _saved(_confined(current.spec.changed(changes or {}), confinement))
        values: dict[str, Any] = {"spec": spec.to_dict(), "updated_at": db.utcnow()}
        if name is not None:
            values["name"] = _name(name)
        with db.write_transaction(self.repository.engine) as conn:
            conn.execute(
                update(tables.workflows).where(tables.workflows.c.id == current.id).values(values)
            )
        return self.get(current.id)

    def delete(self, workflow_id: int | str) -> Workflow:
        """Delete the workflow; its jobs, finished or not, stay."""
        workflow = self.get(workflow_id)
        with db.write_transaction(self.repository.engine) as conn:
            conn.execute(delete(tables.workflows).where(tables.workflows.c.id == workflow.id))
        return workflow


def workflow_number(value: object) -> int:
    """A workflow id from an int or a string of digits."""
    number = shapes.whole_number(value.strip() if isinstance(value, str) else value)
    if number is None or number < 1:
        raise InvalidInput(f"A workflow id is a positive integer, got {value!r}.")
    return number


def split_list(value: object, what: str) -> tuple[str, ...]:
    """Non-empty strings from a comma-separated string or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Sequence[object] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise InvalidInput(f"{what} must be a list or a comma-separated string.")
    if not all(isinstance(item, str) for item in items):
        raise InvalidInput(f"{what} must hold strings only.")
    return tuple(item.strip() for item in items if isinstance(item, str) and item.strip())


def _spec(spec: WorkflowSpec | Mapping[str, Any]) -> WorkflowSpec:
    return spec if isinstance(spec, WorkflowSpec) else WorkflowSpec.from_dict(spec)


def _confined(spec: WorkflowSpec, confinement: Confinement | None) -> WorkflowSpec:
    return spec if confinement is None else confinement.spec(spec)


def _saved(spec: WorkflowSpec) -> WorkflowSpec:
    """The spec as a workflow stores it: paths absolute, variables checked."""
    spec.variables()  # a malformed ${...} fails now, not at every run
    return spec.absolute()


def _workflow(row: Any) -> Workflow:
    return Workflow(
        id=row.id,
        name=row.name,
        spec=WorkflowSpec.from_dict(row.spec),
        created_at=db.as_utc(row.created_at),
        updated_at=db.as_utc(row.updated_at),
    )


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"A workflow name is text, got {type(name).__name__}.")
    name = name.strip()
    if len(name) > MAX_WORKFLOW_NAME_LENGTH:
        raise InvalidInput(
            f"A workflow name is at most {MAX_WORKFLOW_NAME_LENGTH} characters; this one has "
            f"{len(name)}."
        )
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name):
        # It heads e-mail reports, whose Subject line cannot hold a line break.
        raise InvalidInput(
            f"A workflow name is a single line of text without control characters (line "
            f"breaks, tabs and the like); got {name!r}."
        )
    return name


# The longest file name (one path component) Linux, macOS and Windows file systems take.
MAX_NAME_BYTES = 255


def _path(text: str, what: str) -> str:
    """A path a file system can hold: no NUL character, no name over 255 bytes."""
    if "\0" in text:
        raise InvalidInput(f"The {what} holds a NUL character: {text!r}.", field=what)
    long = [
        part for part in text.split("/") if len(part.encode("utf-8", "replace")) > MAX_NAME_BYTES
    ]
    if long:
        raise InvalidInput(
            f"The {what} has a name of {len(long[0].encode('utf-8', 'replace'))} "
            f"bytes ({long[0][:40]!r}...): a file system takes at most {MAX_NAME_BYTES}.",
            field=what,
        )
    return text


def _text(value: object, what: str, meaning: str) -> str:
    if not isinstance(value, str) or not value.strip():
        # Said without "workflow": a one-off score run (the sidebar's Score) has none.
        raise InvalidInput(f"The {what} is empty: give {meaning}.", field=what)
    return value.strip()


def _format(value: object, which: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in FORMATS:
        raise InvalidInput(
            f"Unknown {which} format {value!r}: use one of {', '.join(FORMATS)}, or leave it "
            "out to go by the file extension."
        )
    return value.strip().lower()


def _columns(value: object) -> tuple[str, ...] | None:
    if value is None or (isinstance(value, str) and value.strip() == ALL_COLUMNS):
        return None
    columns = split_list(value, "keep_columns")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise InvalidInput(f"keep_columns names {', '.join(map(repr, repeated))} twice.")
    return columns


def spark_settings(value: object) -> dict[str, str]:
    """Spark settings checked: a mapping of setting names to text (numbers become text)."""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "spark_config must map Spark settings to values, such as "
            '{"spark.executor.memory": "4g"}.'
        )
    config: dict[str, str] = {}
    for key, setting in value.items():
        if not isinstance(key, str) or not key.strip() or any(c.isspace() or c == "=" for c in key):
            raise InvalidInput(
                f"Invalid Spark setting name {key!r}: a name such as spark.executor.memory."
            )
        if isinstance(setting, bool):
            setting = str(setting).lower()
        elif isinstance(setting, (int, float)):
            setting = str(setting)
        if not isinstance(setting, str):
            raise InvalidInput(f"The Spark setting {key} must be text, got {setting!r}.")
        config[key] = setting
    return config


def _has_variables(text: str) -> bool:
    """Whether `text` holds a `${NAME}` (leniently: a run's filled text may hold a lone $)."""
    return any(match["name"] is not None for match in _DOLLAR.finditer(text))


def _absolute_model(model: str) -> str:
    if _has_variables(model):
        return model
    ref = ModelRef.parse(model)
    return model if ref.in_repository else str(ref)


def _absolute(path: str) -> str:
    if "://" in path or path.startswith("${"):
        return path
    return os.path.abspath(os.path.expanduser(path))


def _same_path(first: str, second: str) -> bool:
    return _absolute(first) == _absolute(second)
