"""A score run checked before it is submitted, with nothing written: what a dialog asks
before it closes, so that a bad path or column is said next to its field."""

from __future__ import annotations

from ..confinement import Confinement
from ..repository import ModelRepository
from ..scoring.offline import prepare
from .definitions import WorkflowSpec, score_arguments


def check_score(
    spec: WorkflowSpec,
    *,
    repository: ModelRepository,
    confinement: Confinement | None = None,
) -> None:
    """Refuse `spec` as the job would: the folders a server may touch (as `JobRunner.submit`
    confines them), then the engine, the model, the files, the columns and the output (as
    the job's run plans it, `offline.prepare`). A setting still holding a `${variable}` is
    checked by the run that fills it."""
    if confinement is not None:
        spec = confinement.spec(spec)
    if any(spec.variables().values()):
        return
    spec = spec.absolute()
    prepare(**score_arguments(spec), repository=repository)
