"""Plug-ins found through entry points: deployment targets (`jupyter_sparkserve.targets`)
and batch engines (`jupyter_sparkserve.engines`). The built-in ones are registered the same
way, in this package's own metadata, so the product and a third party add one alike.

A plug-in that cannot be loaded is left out and reported (`broken`), never fatal: one bad
package must not take every face down.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("jupyter_sparkserve.plugins")
BUILT_IN_FIRST = "local"  # listed first in every group; the others follow by name


@dataclass(frozen=True)
class Availability:
    """Whether a plug-in can work on this machine, and why not or what it will use."""

    usable: bool
    detail: str


@dataclass(frozen=True)
class _Found:
    loaded: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def load(group: str, base: type[T]) -> dict[str, T]:
    """The plug-ins of `group` by name (`local` first), each an instance of its class, which
    subclasses `base`."""
    return dict(_scan(group, base).loaded)


def broken(group: str, base: type) -> dict[str, str]:
    """The plug-ins of `group` that could not be loaded, with why."""
    return dict(_scan(group, base).problems)


@functools.cache
def _scan(group: str, base: type) -> _Found:
    from importlib.metadata import entry_points

    found = _Found()
    for entry in sorted(
        entry_points(group=group), key=lambda e: (e.name != BUILT_IN_FIRST, e.name)
    ):
        if entry.name in found.loaded or entry.name in found.problems:
            continue  # the first one installed wins, as for console scripts
        try:
            kind = entry.load()
            if not (isinstance(kind, type) and issubclass(kind, base)):
                raise TypeError(f"{entry.value} is not a {base.__name__}")
            instance = kind()
            if instance.name != entry.name:
                raise ValueError(f"{entry.value} calls itself {instance.name!r}")
        except Exception as error:  # a broken plug-in is reported, never fatal
            log.warning("The %s plug-in %r cannot be loaded: %s", group, entry.name, error)
            found.problems[entry.name] = (
                f"The plug-in cannot be loaded: {type(error).__name__}: {error}"
            )
            continue
        found.loaded[entry.name] = instance
    return found
