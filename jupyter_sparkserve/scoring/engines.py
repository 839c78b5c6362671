"""Batch engines as plug-ins: what scores a checked plan (`batch.Plan`) of files.

An engine is a `BatchEngine` registered under the entry-point group
`jupyter_sparkserve.engines` (the built-in `local` and `spark` ones too): it says whether it
can run here and scores a plan into the plan's output, atomically, reporting progress and
honouring a cancel event. Planning, checking the input and the output's format are the
same for every engine (`offline.score`), so every engine refuses the same bad input with the
same message.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import plugins
from ..errors import InvalidInput
from ..plugins import Availability
from .batch import BatchResult, Plan, ProgressCallback

GROUP = "jupyter_sparkserve.engines"


class BatchEngine(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    # Whether it takes Spark settings and jars (sparkConfig, libJars); others refuse them.
    takes_spark_settings: ClassVar[bool] = False

    @abstractmethod
    def check(self) -> Availability:
        """Whether this engine can run on this machine."""

    @abstractmethod
    def score(
        self,
        model_path: Path,
        plan: Plan,
        *,
        spark_config: Mapping[str, str] | None = None,
        lib_jars: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        """Score every input of `plan` with the MLflow model at `model_path` into the
        plan's output, written atomically."""


class LocalEngine(BatchEngine):
    """The streaming engine of `batch`, in this process, with bounded memory."""

    name = "local"
    title = "This process (streaming)"

    def check(self) -> Availability:
        return Availability(True, "Scores in this process, streaming with bounded memory.")

    def score(
        self,
        model_path: Path,
        plan: Plan,
        *,
        spark_config: Mapping[str, str] | None = None,
        lib_jars: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        from . import batch
        from .batch import load_batch_model

        return batch.run(load_batch_model(model_path), plan, progress=progress, cancel=cancel)


def check_spark_settings(
    engine: str, spark_config: Mapping[str, str] | None, lib_jars: Sequence[str] | None
) -> None:
    """Spark settings and jars go only to an engine that takes them."""
    found = engines()
    if (spark_config or lib_jars) and not get_engine(engine).takes_spark_settings:
        spark = [name for name, runner in found.items() if runner.takes_spark_settings]
        raise InvalidInput(
            f"Spark settings and jars apply to engine {' or '.join(map(repr, spark))} only: "
            "choose that engine or leave them out."
        )


def engines() -> dict[str, BatchEngine]:
    """The installed engines by name: `local` first, then the others by name."""
    return plugins.load(GROUP, BatchEngine)


def get_engine(name: str) -> BatchEngine:
    found = engines()
    if name not in found:
        raise InvalidInput(f"Unknown engine {name!r}: use one of {', '.join(found)}.")
    return found[name]


@dataclass(frozen=True)
class EngineStatus:
    engine: str
    title: str
    usable: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "title": self.title, "usable": self.usable,
                "detail": self.detail}  # fmt: skip


def engines_status() -> list[EngineStatus]:
    """Every installed engine's check, in parallel: the Score dialog offers the usable ones."""
    found = engines()
    with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:
        answers = list(pool.map(lambda runner: runner.check(), found.values()))
    rows = [
        EngineStatus(runner.name, runner.title, answer.usable, answer.detail)
        for runner, answer in zip(found.values(), answers, strict=True)
    ]
    broken = plugins.broken(GROUP, BatchEngine)
    return rows + [EngineStatus(name, name, False, problem) for name, problem in broken.items()]
