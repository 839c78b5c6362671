"""What a model name, an alias and a tag key may be.

Names become folder names in the artifact store and parts of `NAME:VERSION` / `NAME@ALIAS`
references, so they exclude path separators, `..`, `:` and `@`.
"""

from __future__ import annotations

import math
import re

from ..errors import InvalidInput, InvalidName

MAX_NAME_LENGTH = 128
MAX_ALIAS_LENGTH = 64
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 5000

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# "latest" always means the newest version; "v3" would read as a version number.
_RESERVED_ALIAS = re.compile(r"latest|v\d+", re.IGNORECASE)

NAME_RULE = (
    f"a model name is 1 to {MAX_NAME_LENGTH} characters: letters, digits, '.', '_' and '-', "
    "starting with a letter or digit, not ending with '.', with no '..' (so no '/', '\\', "
    "':', '@' or spaces)"
)
ALIAS_RULE = (
    f"an alias is 1 to {MAX_ALIAS_LENGTH} characters: letters, digits, '_' and '-', starting "
    "with a letter; 'latest' and 'v<number>' are reserved"
)


def validate_model_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"A model name is required: {NAME_RULE}.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"Invalid model name '{name[:40]}...' ({len(name)} characters): {NAME_RULE}."
        )
    if not _NAME.fullmatch(name) or ".." in name or name.endswith("."):
        raise InvalidName(f"Invalid model name {name!r}: {NAME_RULE}.")
    return name


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not alias:
        raise InvalidName(f"An alias is required: {ALIAS_RULE}.")
    if len(alias) > MAX_ALIAS_LENGTH or not _ALIAS.fullmatch(alias):
        raise InvalidName(f"Invalid alias {alias!r}: {ALIAS_RULE}.")
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidName(f"Invalid alias {alias!r}: {ALIAS_RULE}.")
    return alias


def validate_tags(tags: object) -> dict[str, str]:
    """Tags are short string keys with string values; numbers are turned into strings."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise InvalidInput("Tags must be a mapping of key to value, such as {'team': 'risk'}.")
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_TAG_KEY_LENGTH:
            raise InvalidInput(
                f"Invalid tag key {key!r}: a tag key is a non-empty string of at most "
                f"{MAX_TAG_KEY_LENGTH} characters."
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidInput(
                f"Invalid value for tag {key!r}: tag values are strings (or numbers), "
                f"got {type(value).__name__}."
            )
        text = str(value)
        if len(text) > MAX_TAG_VALUE_LENGTH:
            raise InvalidInput(
                f"The value of tag {key!r} is {len(text)} characters; at most "
                f"{MAX_TAG_VALUE_LENGTH} are kept."
            )
        clean[key] = text
    return clean


def validate_metrics(metrics: object) -> dict[str, float]:
    """Metrics are named finite numbers (accuracy, rmse, ...): NaN and infinities have no
    JSON form, so they would break every API that shows the model."""
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise InvalidInput("Metrics must be a mapping of name to number, such as {'rmse': 0.3}.")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_TAG_KEY_LENGTH:
            raise InvalidInput(
                f"Invalid metric name {key!r}: a metric name is a non-empty string of at most "
                f"{MAX_TAG_KEY_LENGTH} characters."
            )
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)  # type: ignore[arg-type]
            if not math.isfinite(number):
                raise ValueError
            clean[key] = number
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Invalid value for metric {key!r}: metrics are finite numbers, got {value!r}."
            ) from None
    return clean


def parse_key_values(values: object, what: str) -> dict[str, str]:
    """`["team=risk", "stage=dev"]` -> `{"team": "risk", "stage": "dev"}` (CLI, magics)."""
    pairs: dict[str, str] = {}
    for value in values or ():  # type: ignore[attr-defined]
        key, sep, item = str(value).partition("=")
        if not sep or not key:
            raise InvalidInput(f"Invalid {what} {value!r}: write it as KEY=VALUE.")
        pairs[key] = item
    return pairs
