"""Deployment targets as plug-ins: where a deployment runs.

A target is a `DeploymentTarget` registered under the entry-point group
`jupyter_sparkserve.targets` (the built-in `local` one too), so another package adds one
without a change here. It declares its options once (`Option`: the Deploy dialog, the CLI's
and the magic's flags are generated from them), says whether it is usable on this machine
(`check`), starts serving a model folder, stops, reports whether it still serves, gives the
snippets that reach it and the details worth showing. Nothing else differs between targets
for the rest of the product.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .. import plugins
from ..errors import InvalidInput
from ..options import Option, parse_options
from ..plugins import Availability

__all__ = [
    "Availability",
    "DeploymentTarget",
    "StartRequest",
    "Started",
    "TargetState",
    "get_target",
    "targets",
]

if TYPE_CHECKING:
    from ..repository import ModelVersion
    from ..snippets import Snippet

GROUP = "jupyter_sparkserve.targets"


@dataclass(frozen=True)
class StartRequest:
    deployment_id: str
    model_dir: Path  # the MLflow model folder to serve
    workdir: Path  # the deployment's own folder (its log goes here)
    options: Mapping[str, Any]  # every declared option, checked, defaults filled in
    ref: str = ""  # the version served, NAME:VERSION (names images, containers, ...)


@dataclass(frozen=True)
class Started:
    url: str
    details: dict[str, Any]  # what the target needs to find the endpoint again; no secrets


@dataclass(frozen=True)
class TargetState:
    serving: bool
    message: str = ""


class DeploymentTarget(ABC):
    name: ClassVar[str]
    title: ClassVar[str]  # a few words for menus and dialogs
    options: ClassVar[tuple[Option, ...]] = ()
    # Its own item in a version's Actions menu, next to Deploy; "": only in Deploy's dialog.
    menu_label: ClassVar[str] = ""
    # A deployment still starting after this belongs to a deploy whose process died.
    start_limit_seconds: ClassVar[float] = 600.0
    # Whether `state` is cheap (this machine only, milliseconds): a long-running server then
    # asks it every second (`watch.py`), so a death shows without a read. Cloud ones: no.
    watched: ClassVar[bool] = False
    # Why the monitor cannot read the endpoint's `/metrics` at its URL ("": it can).
    metrics_unreachable: ClassVar[str] = ""

    @abstractmethod
    def check(self) -> Availability:
        """Whether deploying here can work on this machine, answered in a few seconds
        without side effects."""

    @abstractmethod
    def start(self, request: StartRequest) -> Started:
        """Serve the model; return once it answers, or raise saying why not (nothing left
        running)."""

    @abstractmethod
    def stop(self, details: dict[str, Any]) -> None:
        """Stop serving; stopping what is already gone does nothing."""

    @abstractmethod
    def state(self, details: dict[str, Any]) -> TargetState | None:
        """Whether it still serves, and if not why; None when this machine cannot tell (an
        endpoint of another machine sharing the repository): the record stands."""

    @abstractmethod
    def snippets(self, version: ModelVersion, url: str, details: dict[str, Any]) -> list[Snippet]:
        """Ready-to-run code that scores the version's input example at the endpoint."""

    def details(self, details: dict[str, Any]) -> list[tuple[str, str]]:
        """Labelled facts about a deployment worth showing (none besides its URL)."""
        return []

    def preflight(self, options: Mapping[str, Any]) -> None:
        """Refuse options that `start` would refuse and that can be told now, quickly and
        without side effects (a port in use); `begin` calls it, so the refusal comes before
        the deployment is recorded. Name the option at fault as the error's `field`."""
        return None  # most targets can tell nothing before they start

    def parse_options(
        self,
        values: Mapping[str, Any] | None,
        environ: Mapping[str, str] | None = None,
        *,
        error: type[InvalidInput] = InvalidInput,
    ) -> dict[str, Any]:
        """Every option's value (see `options.parse_options`); `error` for a bad shape."""
        return parse_options(self.options, values, "deploy options", environ=environ, error=error)

    def describe(self) -> dict[str, Any]:
        """The target as the API lists it (with `check`'s answer from `status`)."""
        return {
            "target": self.name,
            "title": self.title,
            "options": [option.to_dict() for option in self.options],
        }


def log_appender(log_file: Path) -> Callable[[str], None]:
    """A function that appends a line to a deployment's log (each line written at once)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def write(line: str) -> None:
        with log_file.open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    return write


def undo_start(target: DeploymentTarget, details: dict[str, Any], log: Any) -> None:
    """Remove what a failed start had made (nothing half-made stays in a cloud account); a
    failure to remove it goes to the log and never hides why the start failed."""
    try:
        target.stop(details)
    except Exception as problem:
        log(f"Could not remove what this deploy had made: {problem}")


def targets() -> dict[str, DeploymentTarget]:
    """The installed targets by name: `local` first, then the others by name."""
    return plugins.load(GROUP, DeploymentTarget)


def target_options() -> list[tuple[Option, list[str]]]:
    """Every installed target's options, each once by name, with the targets that declare
    it: one flag per option for the faces that take flags (the CLI, the magics)."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for target in targets().values():
        for option in target.options:
            found.setdefault(option.name, (option, []))[1].append(target.name)
    return list(found.values())


def foreign_options(target: str, given: Mapping[str, Any]) -> list[str]:
    """The options in `given` that `target` does not take, as flags (`--port`)."""
    names = {option.name for option in get_target(target).options}
    return ["--" + name.replace("_", "-") for name in sorted(set(given) - names)]


def get_target(name: str) -> DeploymentTarget:
    found = targets()
    if name not in found:
        raise InvalidInput(f"Unknown target {name!r}: choose one of {', '.join(found)}.")
    return found[name]


@dataclass(frozen=True)
class TargetStatus:
    target: str
    title: str
    usable: bool
    detail: str
    options: tuple[Option, ...] = ()
    menu_label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "title": self.title,
            "usable": self.usable,
            "detail": self.detail,
            "options": [option.to_dict() for option in self.options],
            "menu_label": self.menu_label,
        }


Defaults = Mapping[str, Mapping[str, Any]]  # a server's configured option values, by target


def check_defaults(defaults: Defaults) -> None:
    """Configured defaults name installed targets and their options, with values of the
    options' types; a secret is never configured this way (it would sit in a config file)."""
    for name, values in defaults.items():
        target = get_target(name)
        secrets = [o.name for o in target.options if o.secret and values.get(o.name) is not None]
        if secrets:
            raise InvalidInput(f"Give {name}'s {', '.join(secrets)} per deploy, not as a default.")
        target.parse_options(values)


def with_defaults(target: str, given: Mapping[str, Any] | None, defaults: Defaults) -> dict:
    """A deploy's options: those given, over the configured defaults of `target`."""
    merged = dict(defaults.get(target, {}))
    merged.update({name: value for name, value in (given or {}).items() if value is not None})
    return merged


def targets_status(defaults: Defaults | None = None) -> list[TargetStatus]:
    """Every installed target's check, in parallel: the slowest check sets the time. The
    Deploy dialog offers exactly the usable ones, and Deploy accepts exactly those. Each
    option's default is the configured one where a server has one."""
    installed = targets()
    with ThreadPoolExecutor(max_workers=max(1, len(installed))) as pool:
        found = list(pool.map(lambda target: target.check(), installed.values()))
    rows = [
        TargetStatus(
            target.name,
            target.title,
            answer.usable,
            answer.detail,
            _shown_defaults(target.options, (defaults or {}).get(target.name, {})),
            target.menu_label,
        )
        for target, answer in zip(installed.values(), found, strict=True)
    ]
    broken = plugins.broken(GROUP, DeploymentTarget)
    rows += [TargetStatus(name, name, False, problem) for name, problem in broken.items()]
    return rows


def _shown_defaults(options: tuple[Option, ...], values: Mapping[str, Any]) -> tuple[Option, ...]:
    return tuple(
        dataclasses.replace(option, default=values[option.name])
        if option.name in values
        else option
        for option in options
    )
