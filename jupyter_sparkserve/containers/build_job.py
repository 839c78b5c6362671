"""Image builds as jobs: what a build job does (`BuildSpec`) and its run in the job's process.

A build runs as a job like a score run (queued, running, its log, progress, Cancel), so the
sidebar and the magics follow it the same way. It prepares the environment, builds the image on
the engine, and pushes it when asked. Its progress is the Dockerfile's steps done; its output
is the image tag, or after a push the pullable `REPOSITORY@DIGEST`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .. import shapes
from ..errors import Cancelled, Conflict, InvalidInput
from .context import check_image_reference, image_tag

if TYPE_CHECKING:
    from ..repository import ModelRepository

# A build step as Podman ("[1/2] STEP 3/8: RUN ...") and Docker ("Step 3/16 : RUN ...") log it.
_STEP = re.compile(r"^(?:\[\d+/\d+\] )?(?:STEP|Step) \d+/\d+ ?:")
_INSTRUCTION = re.compile(r"^[A-Z]+\s")


@dataclass(frozen=True)
class BuildSpec:
    """What a build job does: the image of repository version `model`, tagged `tag`
    (default sparkserve/NAME:VERSION), on `base_image` (default: the settings'), pushed to
    the registry its tag names when `push`."""

    kind: ClassVar[str] = "build"
    model: str
    tag: str | None = None
    base_image: str | None = None
    push: bool = False

    def __post_init__(self) -> None:
        from ..repository import ModelRef

        model = self.model.strip() if isinstance(self.model, str) else ""
        if not model:
            raise InvalidInput("A build needs the model version to put in the image.")
        if not ModelRef.parse(model).in_repository:
            raise InvalidInput(
                f"{model!r} is not a repository version: images are built from versions of "
                "the repository (NAME, NAME:VERSION or NAME@ALIAS)."
            )
        object.__setattr__(self, "model", model)
        if self.tag:
            object.__setattr__(self, "tag", check_image_reference(self.tag, "The tag", name="tag"))
        if self.base_image:  # pinned by digest is good practice
            base = check_image_reference(
                self.base_image, "The base image", digest=True, name="base_image"
            )
            object.__setattr__(self, "base_image", base)
        if self.push and not self.tag:
            raise InvalidInput(
                "Pushing needs a tag naming the registry, such as 127.0.0.1:5000/models/churn:3.",
                field="tag",
            )

    @property
    def output(self) -> str:
        """The image tag: the given one, else sparkserve/NAME:VERSION once `model` is pinned."""
        if self.tag:
            return self.tag
        name, _, version = self.model.rpartition(":")
        return image_tag(name, int(version)) if name and version.isdigit() else ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildSpec:
        shapes.check("ImageBuildSettings", data)
        return cls(**{name: value for name, value in data.items() if value is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tag": self.tag,
            "base_image": self.base_image,
            "push": self.push,
        }

    def absolute(self) -> BuildSpec:
        return self  # nothing relative in it

    def preflight(self) -> None:
        """Refuse now, not in the job, when no container engine answers."""
        from .engine import ping_engine

        answer = ping_engine()
        if not answer.usable:
            raise Conflict(
                f"Cannot build an image of {self.model}: {answer.detail} Start an engine "
                "(Docker, or `podman system service`) or point DOCKER_HOST at one."
            )


@dataclass(frozen=True)
class BuildProgress:
    """Where a build is: its phase, and the Dockerfile steps started out of all."""

    phase: str  # environment, build, push
    steps_done: int
    steps_total: int

    @property
    def fraction(self) -> float | None:
        if self.phase == "environment":
            return None  # pip does not say how far it is
        if self.phase == "push":
            return 1.0
        return min(1.0, self.steps_done / max(1, self.steps_total))

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "fraction": self.fraction,
        }


@dataclass(frozen=True)
class BuildOutcome:
    image_id: str
    tag: str
    pushed: str | None  # REPOSITORY@DIGEST after a push

    @property
    def output(self) -> str:
        return self.pushed or self.tag


def run_build(
    spec: BuildSpec,
    *,
    repository: ModelRepository,
    log: Callable[[str], None],
    progress: Callable[[BuildProgress], None] = lambda _progress: None,
    cancel: threading.Event | None = None,
) -> BuildOutcome:
    """Build (and push) what `spec` says, in this process; Cancelled when `cancel` is set."""
    from .context import render_dockerfile
    from .engine import push_image
    from .images import build_version_image, version_spec

    image = version_spec(repository, spec.model, tag=spec.output, base=spec.base_image)
    total = sum(1 for line in render_dockerfile(image).splitlines() if _INSTRUCTION.match(line))
    state = {"phase": "environment", "steps": 0}
    last_report = [0.0]

    def report(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last_report[0] >= 0.5:
            last_report[0] = now
            progress(BuildProgress(state["phase"], state["steps"], total))

    def line(text: str) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("The build was cancelled.")
        if _STEP.match(text):
            state["phase"], state["steps"] = "build", state["steps"] + 1
            report(force=True)
        log(text)

    report(force=True)
    started = time.monotonic()
    built = build_version_image(
        repository, spec.model, tag=spec.output, base=spec.base_image, log=line, cancel=cancel
    )
    log(f"Built {built.tag} ({built.id[:12]}) in {time.monotonic() - started:.1f} s")
    pushed = None
    if spec.push:
        state["phase"] = "push"
        report(force=True)
        pushed = push_image(built.tag, log=line)
        log(f"Pushed {pushed}")
    state["steps"] = total
    report(force=True)
    return BuildOutcome(image_id=built.id, tag=built.tag, pushed=pushed)
