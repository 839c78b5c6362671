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


@dataclass(frozen=True)
class UriRun:
    """A run whose input and output are URIs (s3://...) that the engine reads and writes
    itself, not files of this machine: nothing is planned here."""

    input: str
    output: str
    input_format: str | None
    keep_columns: list[str] | None  # None: every input column
    prediction_column: str
    writer_tag: str  # names what the run creates (a cloud job), unique per run


class BatchEngine(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    # Whether it takes Spark settings and jars (sparkConfig, libJars); others refuse them.
    takes_spark_settings: ClassVar[bool] = False
    # The URI schemes it reads and writes itself (`score_uris`); () for an engine of files.
    uri_schemes: ClassVar[tuple[str, ...]] = ()

    def score_uris(
        self,
        model_path: Path,
        run: UriRun,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        """Score `run` (only for an engine with `uri_schemes`)."""
        raise NotImplementedError(f"The {self.name} engine scores files, not URIs.")

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


class UriBatchEngine(BatchEngine):
    """An engine of URIs only (a cloud's batch service): files of this machine are refused."""

    def score(self, model_path: Path, plan: Plan, **_settings: Any) -> BatchResult:
        schemes = ", ".join(f"{scheme}://" for scheme in self.uri_schemes)
        raise InvalidInput(f"The {self.name} engine reads and writes {schemes} URIs, not files.")

    @abstractmethod
    def score_uris(
        self,
        model_path: Path,
        run: UriRun,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> BatchResult:
        """Score `run`, reading and writing its URIs."""


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


def check_uris(engine: BatchEngine, input: str, output: str) -> bool:
    """Whether the run is one of URIs (the engine reads and writes them itself): both or
    neither are URIs, of a scheme the engine takes."""
    from ..files import uri_scheme

    schemes = [uri_scheme(input), uri_scheme(output)]
    if not engine.uri_schemes:
        scheme = next((s for s in schemes if s), None)
        if scheme is not None:
            takers = [name for name, found in engines().items() if scheme in found.uri_schemes]
            raise InvalidInput(
                f"The {engine.name} engine reads and writes files of this machine, not "
                f"{scheme}:// URIs"
                + (f": choose engine {' or '.join(map(repr, takers))}." if takers else ".")
            )
        return False
    accepted = ", ".join(f"{scheme}://" for scheme in engine.uri_schemes)
    for what, text, scheme in (("input", input, schemes[0]), ("output", output, schemes[1])):
        if scheme not in engine.uri_schemes:
            raise InvalidInput(
                f"The {engine.name} engine reads and writes {accepted} URIs: the {what} "
                f"{text!r} is not one (copy local files there first)."
            )
    return True


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
