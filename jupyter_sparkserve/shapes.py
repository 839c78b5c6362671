"""Request shapes, declared once: the schemas of `server/openapi.yaml` validate every JSON
body the REST API takes, the workflow settings and Sparkflows execute requests whatever face
they come from, and the deploy options each target declares. The sidebar's TypeScript types
are generated from the same file (`jlpm build:types`).

A shape error becomes one sentence that names the field: `'port' in the deploy options must
be an integer: ...; got a string.`, and that field is its `field` (a dialog shows it there).
A schema's `title` says what the object is in messages ("deploy request"), `x-noun` what its
members are called ("field" unless told), `x-item` what an array's items are ("Row 0 of
'data'"), and each property's `description` is the hint on what to send. A property marked
`x-checked-by: core` is checked by the core with its own errors (a body's workflow
settings): only its own type is checked with the body.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import InvalidInput

SPEC_PATH = Path(__file__).parent / "server" / "openapi.yaml"
_JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}
# The error to report first, when one value breaks several rules.
_PRIORITY = {"type": 0, "additionalProperties": 1, "required": 2}


@functools.cache
def spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPEC_PATH, encoding="utf-8") as file:
        return yaml.load(file, Loader=loader)


def schema(name: str) -> dict[str, Any]:
    """The component schema `name` of the spec."""
    return spec()["components"]["schemas"][name]


def check(name: str, value: Any, *, error: type[InvalidInput] = InvalidInput) -> Any:
    """`value` when it has the shape of the spec's schema `name`; else `error` naming the
    first field at fault."""
    return _check(schema(name), _named_validator(name), value, error)


def check_against(
    declared: Mapping[str, Any], value: Any, *, error: type[InvalidInput] = InvalidInput
) -> Any:
    """`value` checked against a schema that may refer to the spec's components."""
    return _check(declared, _validator(_freeze(declared)), value, error)


def _check(
    declared: Mapping[str, Any], validator: Any, value: Any, error: type[InvalidInput]
) -> Any:
    found = sorted(
        (
            e
            for e in validator.iter_errors(value)
            if not _core_checked(declared, list(e.absolute_path), str(e.validator))
        ),
        key=lambda e: (len(e.absolute_path), _PRIORITY.get(str(e.validator), 9)),
    )
    if found:
        raise error(_message(found[0], dict(declared), value), field=_field(found[0]))
    return value


def _field(found: Any) -> str:
    """The field at fault, as a dialog names its fields (the innermost property: `port`, not
    `options`); "" for an unknown field or a wrong body."""
    if found.validator == "required":
        return next((name for name in found.validator_value if name not in found.instance), "")
    if found.validator == "additionalProperties":
        return ""
    return next((key for key in reversed(found.absolute_path) if isinstance(key, str)), "")


# The largest integer a database column holds (a signed 64-bit BIGINT): ids and counts past it
# are refused at the boundary, never handed to SQLite or PostgreSQL to overflow.
MAX_STORED_INTEGER = 2**63 - 1
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")


def whole_number(value: object) -> int | None:
    """`value` as a stored whole number (0 to MAX_STORED_INTEGER): an int, a float with no
    fraction (JSON's 3.0 is an integer to JSON Schema too), or text of ASCII digits (not
    "²", not Arabic-Indic digits, not "+1"); None when it is not one."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_STORED_INTEGER:
        value = int(value)
    if isinstance(value, str):
        value = int(value) if _WHOLE_NUMBER.fullmatch(value) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_STORED_INTEGER else None


def type_names(declared: Any) -> str:
    """`integer`, `a string or null` ... as a message says what a schema takes."""
    kinds = declared if isinstance(declared, list) else [declared]
    named = [_article(kind) if kind != "null" else "null" for kind in kinds]
    return " or ".join(named) if len(named) < 3 else ", ".join(named[:-1]) + f" or {named[-1]}"


# ----------------------------------------------------------------------------- internals


def _freeze(declared: Mapping[str, Any]) -> str:
    import json

    return json.dumps(declared, sort_keys=True)


@functools.cache
def _named_validator(name: str) -> Any:
    # Every stored job and workflow row is read through a named schema: built once.
    return _validator(_freeze(schema(name)))


@functools.cache
def _validator(frozen: str) -> Any:
    import json

    from jsonschema import Draft202012Validator

    declared = json.loads(frozen)
    # The spec's components ride along so that "#/components/schemas/..." references resolve.
    return Draft202012Validator({**declared, "components": spec()["components"]})


def _resolve(declared: Mapping[str, Any]) -> dict[str, Any]:
    reference = declared.get("$ref")
    while isinstance(reference, str) and reference.startswith("#/components/schemas/"):
        declared = schema(reference.rsplit("/", 1)[1])
        reference = declared.get("$ref")
    return dict(declared)


def _core_checked(root: Mapping[str, Any], path: list[Any], validator: str) -> bool:
    """Whether an error at `path` is the core's to report: it lies in a property marked
    `x-checked-by: core`, and is not about that property's own type."""
    current = _resolve(root)
    for depth, key in enumerate(path):
        if isinstance(key, int):
            raw = current.get("items") or {}
        else:
            raw = (current.get("properties") or {}).get(key) or {}
        if raw.get("x-checked-by") == "core":
            return depth < len(path) - 1 or validator != "type"
        current = _resolve(raw)
    return False


def _object_at(root: Mapping[str, Any], path: list[Any]) -> dict[str, Any]:
    """The schema of the object at `path` of the instance (followed through properties and
    array items)."""
    current = _resolve(root)
    for key in path:
        if isinstance(key, int):
            current = _resolve(current.get("items") or {})
        else:
            current = _resolve((current.get("properties") or {}).get(key) or {})
    return current


def _what(declared: Mapping[str, Any]) -> str:
    return str(declared.get("title") or "request body")


def _message(found: Any, root: dict[str, Any], value: Any) -> str:
    path = list(found.absolute_path)
    kind = found.validator
    if kind in ("oneOf", "anyOf", "not"):  # a rule over several fields, said by the schema
        return str(_object_at(root, path).get("x-message") or found.message)
    if kind in ("required", "additionalProperties") or (kind == "type" and not path):
        holder = _object_at(root, path)
        what, noun = _what(holder), str(holder.get("x-noun") or "field")
        known = ", ".join((holder.get("properties") or {}).keys())
        instance = found.instance
        if kind == "type":
            return f"The {what} must be a JSON object with the {noun}s {known}."
        if kind == "required":
            missing = [name for name in found.validator_value if name not in instance]
            hint = ((holder.get("properties") or {}).get(missing[0]) or {}).get("description")
            return f"The {what} needs {missing[0]!r}" + (f": {_sentence(hint)}." if hint else ".")
        unknown = sorted(set(instance) - set(holder.get("properties") or {}))
        names = ", ".join(map(repr, unknown))
        return f"Unknown {noun}(s) {names} in the {what}: the {noun}s are {known}."
    holder = _object_at(root, path[:-1])
    name = path[-1]
    if isinstance(name, int):  # an item of an array: said as the array names its items
        array = path[-2] if len(path) > 1 else "the list"
        where = f"{holder.get('x-item') or 'Item'} {name} of {array}"
        hint = None
    else:
        where = f"{name!r} in the {_what(holder)}"
        raw = (holder.get("properties") or {}).get(name) or {}
        hint = raw.get("description") or _resolve(found.schema).get("description")
    expected = {
        "type": lambda v: type_names(v),
        "enum": lambda v: "one of " + ", ".join(repr(item) for item in v),
        "minimum": lambda v: f"at least {v}",
        "maximum": lambda v: f"at most {v}",
        "minLength": lambda v: f"at least {v} characters long",
        "maxItems": lambda v: f"at most {v} items",
    }.get(str(kind), lambda _v: "valid")(found.validator_value)
    got = _json_type(found.instance) if kind == "type" else repr(found.instance)
    return (
        f"{where} must be {expected}" + (f": {_sentence(hint)}" if hint else "") + f"; got {got}."
    )


def _sentence(text: Any) -> str:
    return str(text).strip().rstrip(".")


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, types in _JSON_TYPES.items():
        if kind == "number" or kind == "null":
            continue
        if isinstance(value, types) and not (isinstance(value, bool) and kind != "boolean"):
            return _article(kind)
    if isinstance(value, float):
        return "a number"
    return type(value).__name__
