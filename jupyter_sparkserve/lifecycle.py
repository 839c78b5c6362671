"""Which actions a model version offers, decided once here for every face.

The sidebar's Actions menu, the REST API and the CLI show exactly this answer; none of them
re-derives a rule. The rules follow the model lifecycle: saved -> registered in MLflow ->
deployed -> undeployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


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
    from .deploy.deployments import Deployments
    from .deploy.mlflow import MlflowRegistry

    version = repository.resolve(ref)
    state = VersionState(
        registered=bool(MlflowRegistry(repository).registrations(version.ref)),
        deployed=Deployments(repository).active_for(version) is not None,
    )
    return enabled_actions(state)
