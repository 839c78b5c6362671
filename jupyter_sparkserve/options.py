"""Options a plug-in (a deployment target, a batch engine) declares once: each face builds
its own controls from them (the Deploy dialog's fields, the CLI's flags, the magic's flags),
and `parse_options` checks what a face collected, with the messages of every other shape
(`shapes`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import shapes
from .errors import InvalidInput

OptionType = Literal["string", "integer", "number", "boolean"]


@dataclass(frozen=True)
class Option:
    name: str  # a Python identifier: the key in a REST body, `--name-with-dashes` as a flag
    type: OptionType
    help: str
    default: Any = None  # None: the plug-in decides (a free port, ...)
    secret: bool = False  # typed in a password field, never stored, shown or logged
    env: str | None = None  # where the CLI and the magics read it when it is not given
    minimum: float | None = None  # a number's bounds, checked with every other shape
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "help": self.help,
            "default": self.default,
            "secret": self.secret,
            "env": self.env,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }

    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": [self.type, "null"], "description": self.help}
        bounds = {"minimum": self.minimum, "maximum": self.maximum}
        return found | {key: bound for key, bound in bounds.items() if bound is not None}


def options_schema(options: Sequence[Option], what: str) -> dict[str, Any]:
    """The JSON schema of an object holding `options` (each may be null: its default)."""
    return {
        "type": "object",
        "title": what,
        "additionalProperties": False,
        "properties": {option.name: option.schema() for option in options},
    }


def parse_options(
    options: Sequence[Option],
    values: Mapping[str, Any] | None,
    what: str,
    *,
    environ: Mapping[str, str] | None = None,
    error: type[InvalidInput] = InvalidInput,
) -> dict[str, Any]:
    """Every option's value: the one given (checked), else its environment variable's in
    `environ` (a face acting in the user's own shell passes it; the REST API does not), else
    its default."""
    given = dict(values or {})
    shapes.check_against(options_schema(options, what), given, error=error)
    parsed: dict[str, Any] = {}
    for option in options:
        value = given.get(option.name)
        if value is None and option.env and environ is not None:
            value = _from_env(option, environ.get(option.env))
        parsed[option.name] = option.default if value is None else value
    return parsed


def _from_env(option: Option, text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    if option.type == "string":
        return text
    if option.type in ("integer", "number"):
        kind, wanted = (int, "a whole number") if option.type == "integer" else (float, "a number")
        try:
            return kind(text)
        except ValueError:
            raise InvalidInput(f"{option.env} must be {wanted}, got {text!r}.") from None
    return text.strip().lower() in ("1", "true", "yes", "on")
