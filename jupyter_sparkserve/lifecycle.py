"""The model lifecycle, decided once here for every face: which actions a model version and a
deployment offer, which deployment statuses count as deployed, the registration rule, and
which snippets a version or a deployment has.

saved -> registered in MLflow -> deployed -> undeployed. The sidebar's Actions menu, the REST
API, the CLI and the magics show exactly these answers; none of them re-derives a rule, and
an action is offered exactly when the core accepts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import Conflict, remedy

if TYPE_CHECKING:
    from .deploy.mlflow import Registration
    from .repository import ModelRepository, ModelVersion
    from .snippets import Snippet

# A deployment goes starting -> running -> stopped, or failed at any point.
DEPLOYMENT_STATUSES = ("starting", "running", "stopped", "failed")
# Up, or coming up: the version counts as deployed, Undeploy stops it (a starting one is
# stopped as soon as its endpoint comes up), and its version cannot be deleted.
DEPLOYED_STATUSES = ("starting", "running")
# Ended, and worth the user's attention until dismissed: a failed deployment (its error says
# why). A stopped one was the user's own Undeploy, already said: history, listed on request.
ATTENTION_STATUSES = ("failed",)


class Action(str, Enum):
    REGISTER = "register"
    REREGISTER = "reregister"
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    SCORE = "score"
    BUILD_IMAGE = "build_image"
    KUBERNETES = "kubernetes"
    SNIPPETS = "snippets"
    DELETE = "delete"
    DISMISS = "dismiss"  # a deployment's only: forget an ended deployment's record
    MONITOR = "monitor"  # a deployment's only: its endpoint's live figures (`monitor/`)


# What a deployment may offer, in the order a face shows them; the ones a version never does.
DEPLOYMENT_ACTIONS = (Action.UNDEPLOY, Action.SNIPPETS, Action.MONITOR, Action.DISMISS)
DEPLOYMENT_ONLY = (Action.DISMISS, Action.MONITOR)


@dataclass(frozen=True)
class VersionState:
    registered: bool
    deployed: bool
    serving: bool = False  # a deployment of it answers (running, not just starting)


def enabled_actions(state: VersionState) -> list[Action]:
    actions = [Action.REREGISTER if state.registered else Action.REGISTER]
    if state.registered and not state.deployed:
        actions.append(Action.DEPLOY)  # an MLflow endpoint serves the registered models:/ URI
    if state.deployed:
        actions.append(Action.UNDEPLOY)
    actions.append(Action.SCORE)
    # An image holds the version's own folder: any saved version can be built and run.
    actions += [Action.BUILD_IMAGE, Action.KUBERNETES]
    if state.registered or state.serving:
        # python/curl snippets for a serving version, an offline one for a registered one
        actions.append(Action.SNIPPETS)
    if not state.deployed:
        actions.append(Action.DELETE)  # never pull a model out from under a live endpoint
    return actions


def unavailable_actions(state: VersionState) -> list[tuple[Action, str]]:
    """The actions a version does not offer now, each with why, in `Action` order: a face
    shows them greyed with the reason rather than hiding them. (Register and Re-register
    are one choice: the one not offered is not listed.)"""
    enabled = set(enabled_actions(state))
    skipped = {Action.REGISTER, Action.REREGISTER, *DEPLOYMENT_ONLY}
    return [(a, _why_not(a, state)) for a in Action if a not in enabled and a not in skipped]


def _why_not(action: Action, state: VersionState) -> str:
    if action is Action.DEPLOY:
        if state.deployed:
            return "A deployment of it is up already."
        return "Register it first: a deployment serves the model registered in MLflow."
    if action is Action.UNDEPLOY:
        return "No deployment of it is up."
    if action is Action.SNIPPETS:
        return "Register or deploy it first: its snippets load it from MLflow or call its endpoint."
    if action is Action.DELETE:
        return "Undeploy it first: a live endpoint serves it."
    return "Not available for this version now."


def deployment_unavailable(status: str, no_metrics: str = "") -> list[tuple[Action, str]]:
    """What a deployment in `status` does not offer now, with why (a face greys it);
    `no_metrics`: why its target's endpoints cannot be monitored, if they cannot."""
    offered = deployment_actions(status, no_metrics)
    why = {
        Action.UNDEPLOY: f"It is {status}: there is nothing to undeploy.",
        Action.SNIPPETS: "Its endpoint does not answer yet."
        if status == "starting"
        else f"It is {status}: no endpoint answers.",
        Action.MONITOR: no_metrics
        or (
            "Its endpoint does not answer yet."
            if status == "starting"
            else f"It is {status}: no endpoint answers, so there is nothing to monitor."
        ),
        Action.DISMISS: f"It is {status}: undeploy it first; only an ended deployment's "
        "record can be dismissed.",
    }
    return [(action, why[action]) for action in DEPLOYMENT_ACTIONS if action not in offered]


def deployment_actions(status: str, no_metrics: str = "") -> list[Action]:
    """What a deployment in `status` offers: Undeploy while it is deployed, snippets and the
    live monitor while its endpoint answers (unless its target's metrics are out of reach,
    `no_metrics` saying why), Dismiss (forget its record) once it has ended."""
    if status not in DEPLOYED_STATUSES:
        return [Action.DISMISS]
    if status == "running":
        live = [Action.UNDEPLOY, Action.SNIPPETS]
        return live if no_metrics else [*live, Action.MONITOR]
    return [Action.UNDEPLOY]


def version_actions(repository: ModelRepository, ref: str) -> list[Action]:
    """The actions enabled for the repository version `ref` as things are now."""
    version = repository.resolve(ref)
    return enabled_actions(version_states(repository, [(version.name, version.version)])[0])


def version_states(
    repository: ModelRepository, versions: Sequence[tuple[str, int]]
) -> list[VersionState]:
    """The state of each (name, version), in order, with two queries for the whole list (a
    page of the model list, all versions of a model); only deployments recorded as up are
    checked further, since a dead endpoint must not count as deployed."""
    from sqlalchemy import select

    from .deploy import tables
    from .deploy.deployments import Deployments
    from .deploy.mlflow import in_this_registry
    from .repository import database as db

    if not versions:
        return []
    m, r, d = db.models, tables.mlflow_registrations, tables.deployments
    names = sorted({name for name, _ in versions})
    with repository.engine.connect() as conn, conn.begin():
        registered = set(
            conn.execute(
                select(m.c.name, r.c.version)
                .join(r, r.c.model_id == m.c.id)
                .where(m.c.name.in_(names), in_this_registry(r, repository.settings))
            ).tuples()
        )
        live = conn.execute(
            select(m.c.name, d.c.version, d.c.id)
            .join(d, d.c.model_id == m.c.id)
            .where(m.c.name.in_(names), d.c.status.in_(DEPLOYED_STATUSES))
        ).all()
    service = Deployments(repository)
    statuses: dict[tuple[str, int], set[str]] = {}
    for row in live:
        statuses.setdefault((row.name, row.version), set()).add(service.get(row.id).status)
    states = []
    for pair in versions:
        found = statuses.get(pair, set())
        states.append(
            VersionState(
                registered=pair in registered,
                deployed=bool(found & set(DEPLOYED_STATUSES)),
                serving="running" in found,
            )
        )
    return states


def require_registered(
    repository: ModelRepository, version: ModelVersion, why: str
) -> Registration:
    """The version's newest MLflow registration; Conflict saying `why` it needs one, with
    Register as the remedy, when it has none."""
    from .deploy.mlflow import MlflowRegistry

    registrations = MlflowRegistry(repository).registrations(version.ref)
    if not registrations:
        raise Conflict(
            f"{version.ref} is not registered in MLflow, and {why}: register it first.",
            remedy=remedy("register", ref=version.ref),
        )
    return registrations[0]


@dataclass(frozen=True)
class SnippetSet:
    snippets: list[Snippet]
    summary: str  # one line saying what they do
    key: str  # what they are for: a deployment id or a version ref

    def to_dict(self) -> dict[str, Any]:
        return {
            "snippets": [snippet.to_dict() for snippet in self.snippets],
            "summary": self.summary,
        }


def snippets_for(repository: ModelRepository, ref_or_id: str) -> SnippetSet:
    """The snippets of a deployment id, or of a model version reference."""
    from .deploy.deployments import Deployments

    deployments = Deployments(repository)
    if deployments.exists(ref_or_id):
        return deployment_snippets(repository, ref_or_id)
    return version_snippets(repository, ref_or_id)


def deployment_snippets(repository: ModelRepository, deployment_id: str) -> SnippetSet:
    """python and curl code scoring the version's input example at the deployment."""
    from .deploy.deployments import Deployments

    deployment = Deployments(repository).get(deployment_id)
    if Action.SNIPPETS not in deployment_actions(deployment.status):
        raise Conflict(
            f"Deployment {deployment.id} of {deployment.ref} is {deployment.status}: it has no "
            "endpoint to send requests to."
        )
    from .deploy.targets import get_target

    version = repository.resolve(deployment.ref)
    found = get_target(deployment.target).snippets(version, deployment.url, deployment.details)
    summary = f"Score {deployment.ref} at {deployment.url} (deployment {deployment.id})."
    return SnippetSet(found, summary, deployment.id)


def version_snippets(repository: ModelRepository, ref: str) -> SnippetSet:
    """A serving version's endpoint snippets; else, for a registered one, the offline
    python snippet (load its `models:/` URI from MLflow and score a DataFrame)."""
    from .deploy.deployments import Deployments
    from .snippets import offline_python

    version = repository.resolve(ref)
    deployment = Deployments(repository).active_for(version)
    if deployment is not None and deployment.status == "running":
        return deployment_snippets(repository, deployment.id)
    registration = require_registered(repository, version, "its snippets load it from MLflow")
    settings = repository.settings
    found = [
        offline_python(
            version, registration, settings.mlflow_tracking_uri, settings.mlflow_registry_uri
        )
    ]
    return SnippetSet(found, f"Score {version.ref} offline from MLflow.", version.ref)
