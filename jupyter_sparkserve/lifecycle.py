"""Which actions a model version offers, decided once here for every face.

The sidebar's Actions menu, the REST API and the CLI show exactly this answer; none of them
re-derives a rule. The rules follow the model lifecycle: saved -> registered in MLflow ->
deployed -> undeployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import Conflict

if TYPE_CHECKING:
    from .snippets import Snippet


class Action(str, Enum):
    REGISTER = "register"
    REREGISTER = "reregister"
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    SCORE = "score"
    SNIPPETS = "snippets"
    DELETE = "delete"


@dataclass(frozen=True)
class VersionState:
    registered: bool
    deployed: bool


def enabled_actions(state: VersionState) -> list[Action]:
    actions = [Action.REREGISTER if state.registered else Action.REGISTER]
    if state.registered and not state.deployed:
        actions.append(Action.DEPLOY)  # an MLflow endpoint serves the registered models:/ URI
    if state.deployed:
        actions.append(Action.UNDEPLOY)
    actions.append(Action.SCORE)
    if state.registered or state.deployed:
        # python/curl snippets for a deployed version, an offline one for a registered one
        actions.append(Action.SNIPPETS)
    if not state.deployed:
        actions.append(Action.DELETE)  # never pull a model out from under a live endpoint
    return actions


def version_actions(repository: Any, ref: str) -> list[Action]:
    """The actions enabled for the repository version `ref` as things are now."""
    version = repository.resolve(ref)
    return enabled_actions(version_states(repository, [(version.name, version.version)])[0])


def version_states(repository: Any, versions: Sequence[tuple[str, int]]) -> list[VersionState]:
    """The state of each (name, version), in order, with two queries for the whole list (a
    page of the model list, all versions of a model); only deployments recorded as up are
    checked further, since a dead endpoint must not count as deployed."""
    from sqlalchemy import select

    from .deploy.deployments import ACTIVE, Deployments
    from .repository import database as db

    if not versions:
        return []
    m, r, d = db.models, db.mlflow_registrations, db.deployments
    names = sorted({name for name, _ in versions})
    with repository.engine.connect() as conn, conn.begin():
        registered = set(
            conn.execute(
                select(m.c.name, r.c.version)
                .join(r, r.c.model_id == m.c.id)
                .where(m.c.name.in_(names))
            ).tuples()
        )
        live = conn.execute(
            select(m.c.name, d.c.version, d.c.id)
            .join(d, d.c.model_id == m.c.id)
            .where(m.c.name.in_(names), d.c.status.in_(ACTIVE))
        ).all()
    service = Deployments(repository)
    deployed = {(row.name, row.version) for row in live if service.get(row.id).active}
    return [VersionState(pair in registered, pair in deployed) for pair in versions]


def offline_snippets(repository: Any, ref: str) -> list[Snippet]:
    """The offline python snippet of a registered version (load its `models:/` URI from
    MLflow and score a DataFrame); refused for a version never registered."""
    from .deploy.mlflow import MlflowRegistry
    from .snippets import offline_python

    version = repository.resolve(ref)
    registrations = MlflowRegistry(repository).registrations(version.ref)
    if not registrations:
        raise Conflict(
            f"{version.ref} has no snippets yet: register it first (sparkserve register "
            f"{version.ref})."
        )
    tracking_uri = repository.settings.mlflow_tracking_uri
    return [offline_python(version, registrations[0], tracking_uri)]
