"""Deployments: model versions served somewhere, recorded in the repository database.

Deploy serves the version's registered MLflow model (`models:/NAME/N`), so it needs a
registration (`lifecycle.require_registered`; `register=True` registers first). It runs in
two halves: `begin` checks the rules and records the deployment `starting`, `launch` fetches
the model and has the target start it. Undeploy is accepted exactly when `lifecycle` offers
it: a running deployment is stopped; a starting one is marked stopped, and the deploy in
progress stops the endpoint it was bringing up. Reading a deployment checks its target: one
whose endpoint died is marked `failed` with the reason (`watch.py` has a server check the
cheap targets every second). Dismiss forgets an ended deployment's record.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from ..config import SHADOW_TOKEN_ENV
from ..errors import Conflict, InvalidInput, NotFound, remedy
from ..lifecycle import (
    ATTENTION_STATUSES,
    DEPLOYED_STATUSES,
    Action,
    deployment_actions,
    deployment_unavailable,
    require_registered,
)
from ..processes import log_tail
from ..repository import ModelRef, ModelRepository, ModelVersion
from ..repository import database as db
from . import tables, tuned
from .mlflow import MlflowRegistry, wait_for_preload
from .targets import DeploymentTarget, StartRequest, get_target, targets

table = tables.deployments


@dataclass(frozen=True)
class Deployment:
    id: str
    name: str
    version: int
    target: str
    status: str
    url: str
    model_uri: str
    details: dict[str, Any]
    error: str
    created_at: datetime
    updated_at: datetime
    created_by: str = ""  # who deployed it ('' before schema 5)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def active(self) -> bool:
        return self.status in DEPLOYED_STATUSES

    @property
    def actions(self) -> list[Action]:
        return deployment_actions(self.status, self.metrics_unreachable)

    @property
    def metrics_unreachable(self) -> str:
        """Why its target's endpoints cannot be monitored ('' when they can)."""
        try:
            return get_target(self.target).metrics_unreachable
        except Exception:  # a target uninstalled since: nothing to monitor there either
            return f"The {self.target} target is not installed here."

    def shown_details(self) -> list[tuple[str, str]]:
        """The target's labelled facts about it, for the faces to show."""
        tuning = self.details.get("tuned_batching")
        batching = [("batching", str(tuning))] if tuning else []
        try:
            return get_target(self.target).details(self.details) + batching
        except Exception:  # a target uninstalled since, or details it cannot read
            return batching

    def progress(self) -> str:
        """While it starts, the last step its target wrote to the deployment's log."""
        if self.status != "starting" or not self.details.get("log_file"):
            return ""
        return log_tail(Path(self.details["log_file"]), 1).strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "target": self.target,
            "status": self.status,
            "url": self.url,
            "model_uri": self.model_uri,
            "details": self.details,
            "shown": [{"label": label, "value": value} for label, value in self.shown_details()],
            "actions": [action.value for action in self.actions],
            "unavailable": [
                {"action": action.value, "reason": why}
                for action, why in deployment_unavailable(self.status, self.metrics_unreachable)
            ],
            "progress": self.progress(),
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_by": self.created_by,
        }


class Deployments:
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository
        self.root = repository.settings.home / "deployments"

    def deploy(
        self,
        ref: str | ModelRef,
        target: str = "local",
        options: Mapping[str, Any] | None = None,
        *,
        register: bool = False,
        environ: Mapping[str, str] | None = None,
        by: str | None = None,
    ) -> Deployment:
        """Both halves at once: the deployment as it ended (running, else an error)."""
        deployment = self.begin(ref, target, options, register=register, environ=environ, by=by)
        return self.launch(deployment.id, options, environ=environ)

    def check(
        self,
        ref: str | ModelRef,
        target: str = "local",
        options: Mapping[str, Any] | None = None,
        *,
        register: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Everything `begin` refuses, checked with nothing recorded, registered or started
        (a dialog asks before it closes): the options, the version, its registration (unless
        `register`), a live deployment of it, and the target's own `preflight`."""
        chosen = get_target(target)
        parsed = chosen.parse_options(options, environ)
        self._with_shadow_url(parsed)
        version = self.repository.resolve(ref)
        if not register:
            self._registration(version)
        active = self.active_for(version)  # refreshes a dead one to failed first
        if active is not None:
            raise _already_deployed(version, active.id)
        chosen.preflight(parsed)
        return version

    def begin(
        self,
        ref: str | ModelRef,
        target: str = "local",
        options: Mapping[str, Any] | None = None,
        *,
        register: bool = False,
        environ: Mapping[str, str] | None = None,
        by: str | None = None,
    ) -> Deployment:
        """First half of `deploy`: check the rules and the options (`check`), and record the
        deployment as `starting` (the REST API answers with it at once and runs `launch` in
        the background). `register`: register the version in MLflow first if it is not;
        `by`: who deploys it (a Jupyter user's name), else this process's user."""
        version = self.check(ref, target, options, register=register, environ=environ)
        if register and not MlflowRegistry(self.repository).registrations(version.ref):
            MlflowRegistry(self.repository).register(version.ref)
        registration = self._registration(version)
        deployment_id = uuid.uuid4().hex[:12]
        log_file = self.root / deployment_id / "log"
        self._insert(deployment_id, version, target, registration.model_uri, str(log_file), by)
        return self._read(deployment_id)

    def _registration(self, version: ModelVersion) -> Any:
        try:
            return require_registered(
                self.repository, version, "a deployment serves the registered model"
            )
        except Conflict as error:
            # Said as the step that does both: deploy with registration.
            raise Conflict(
                error.message, remedy=remedy("deploy", ref=version.ref, register=True)
            ) from None

    def launch(
        self,
        deployment_id: str,
        options: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Second half of `deploy`: fetch the registered model and have the target start it;
        the deployment ends `running`, or `failed` with the reason."""
        deployment = self._read(deployment_id)
        if deployment.status != "starting":
            raise Conflict(f"Deployment {deployment_id} is {deployment.status}, not starting.")
        target = get_target(deployment.target)
        folder = self.root / deployment_id
        served = folder / "model"
        try:
            parsed = target.parse_options(options, environ)
            parsed, shadow_of = self._with_shadow_url(parsed, deployment_id)
            # Batching `sparkserve tune` chose for this version here, unless the options set it.
            parsed, batching = tuned.fill(
                self.repository.settings.home, deployment.name, deployment.version, parsed
            )
            # Fetched from the MLflow store: the deployment serves what MLflow registered.
            wait_for_preload()  # MLflow imported once, not on two threads at a time
            self.repository.fetch_model(deployment.model_uri, served)
            started = target.start(
                StartRequest(deployment_id, served, folder, parsed, ref=deployment.ref)
            )
        except BaseException as error:  # an interrupt too: never leave a row 'starting'
            shutil.rmtree(served, ignore_errors=True)  # the log stays, to read what went wrong
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            self._update(deployment_id, status="failed", error=message)
            raise
        if shadow_of:  # the deployment it mirrors to, beside the URL the target recorded
            started.details["shadow_deployment"] = shadow_of
        if batching is not None:  # said in the details the faces show
            started.details["tuned_batching"] = batching.note
        # Only a row still 'starting' becomes running: one undeployed (or marked failed)
        # meanwhile stays as it is, and the endpoint just started for it is stopped again.
        with db.write_transaction(self.repository.engine) as conn:
            claimed = conn.execute(
                update(table)
                .where(table.c.id == deployment_id, table.c.status == "starting")
                .values(
                    status="running",
                    url=started.url,
                    details=started.details,
                    updated_at=db.utcnow(),
                )
            ).rowcount
        if not claimed:
            target.stop(started.details)
            shutil.rmtree(served, ignore_errors=True)
        return self._read(deployment_id)

    def _with_shadow_url(
        self, options: dict[str, Any], own_id: str = ""
    ) -> tuple[dict[str, Any], str]:
        """The options with their `shadow` (a running deployment's id, or an endpoint URL) as
        the URL the endpoint mirrors to; and that deployment's id ('' for a URL)."""
        shadow = (options.get("shadow") or "").strip()
        if not shadow:
            return options, ""
        if shadow.startswith(("http://", "https://")):
            return {**options, "shadow": shadow.rstrip("/")}, ""
        if shadow == own_id:
            raise InvalidInput("A deployment cannot be its own shadow.", field="shadow")
        try:
            found = self.get(shadow)
        except NotFound:
            raise InvalidInput(
                f"No deployment {shadow!r} to mirror to: give a running deployment's id "
                "or an endpoint URL such as http://host:port.",
                field="shadow",
                remedy=remedy("list_deployments"),
            ) from None
        if found.status != "running" or not found.url:
            raise Conflict(
                f"Deployment {shadow} of {found.ref} is {found.status}, not running: deploy the "
                "shadow version first, then mirror to it.",
                field="shadow",
            )
        if found.details.get("token_required") and not os.environ.get(SHADOW_TOKEN_ENV):
            raise Conflict(
                f"Deployment {shadow} requires a bearer token: set {SHADOW_TOKEN_ENV} to it "
                "where the endpoint is started (it is never recorded).",
                field="shadow",
            )
        return {**options, "shadow": found.url}, shadow

    def undeploy(self, deployment_id: str) -> Deployment:
        """Stop a deployment that is up; one still starting is stopped as it comes up."""
        deployment = self.get(deployment_id)
        if Action.UNDEPLOY not in deployment.actions:
            raise Conflict(
                f"Deployment {deployment_id} of {deployment.ref} is {deployment.status}, not "
                "deployed: there is nothing to undeploy."
            )
        if deployment.status == "starting":
            stopped = self._update(
                deployment_id,
                status="stopped",
                error="Undeployed while it was starting.",
                where_status="starting",
            )
            if stopped.status == "stopped":
                return stopped
            deployment = stopped  # it came up meanwhile: stop it as a running one
        get_target(deployment.target).stop(deployment.details)
        shutil.rmtree(self.root / deployment_id / "model", ignore_errors=True)
        return self._update(deployment_id, status="stopped", error="")

    def dismiss(self, deployment_id: str) -> Deployment:
        """Forget an ended deployment: its record and its folder (the log, what a failed
        start left). Accepted exactly when `lifecycle` offers Dismiss; one that had come up
        is stopped first, in case its endpoint still holds on. The deployment as it was."""
        deployment = self.get(deployment_id)
        if Action.DISMISS not in deployment.actions:
            why = dict(deployment_unavailable(deployment.status))[Action.DISMISS]
            raise Conflict(
                f"Deployment {deployment_id} of {deployment.ref} cannot be dismissed. {why}",
                remedy=remedy("undeploy", deployment=deployment_id),
            )
        if deployment.url and deployment.target in targets():
            targets()[deployment.target].stop(deployment.details)  # gone already: nothing
        with db.write_transaction(self.repository.engine) as conn:
            ended = table.c.status.not_in(DEPLOYED_STATUSES)
            gone = conn.execute(delete(table).where(table.c.id == deployment_id, ended)).rowcount
        if not gone:  # dismissed meanwhile by another face
            raise NotFound(f"No deployment {deployment_id!r}.", remedy=remedy("list_deployments"))
        shutil.rmtree(self.root / deployment_id, ignore_errors=True)
        return deployment

    def get(self, deployment_id: str) -> Deployment:
        """The deployment as it is now: a running one whose endpoint died becomes failed."""
        deployment = self._read(deployment_id)
        age = (db.utcnow() - deployment.updated_at).total_seconds()
        if deployment.status == "starting" and age > _start_limit(deployment.target):
            return self._update(
                deployment_id,
                status="failed",
                error="The process deploying it stopped before the endpoint came up.",
                where_status="starting",
            )
        if deployment.status == "running" and deployment.target in targets():
            # (A target uninstalled since cannot be asked: the record stands as it is.)
            state = targets()[deployment.target].state(deployment.details)
            if state is not None and not state.serving:
                deployment = self._update(
                    deployment_id, status="failed", error=state.message, where_status="running"
                )
        return deployment

    def exists(self, deployment_id: str) -> bool:
        with self.repository.engine.connect() as conn, conn.begin():
            found = conn.execute(select(table.c.id).where(table.c.id == deployment_id)).first()
        return found is not None

    def list(self, *, active_only: bool = False, attention: bool = False) -> list[Deployment]:
        """Newest first: all of them, the ones up (`active_only`), or (`attention`) the ones
        up and the ended ones that need the user's attention until dismissed (failed)."""
        query = select(table.c.id).order_by(table.c.created_at.desc())
        wanted = (*DEPLOYED_STATUSES, *ATTENTION_STATUSES) if attention else DEPLOYED_STATUSES
        if active_only or attention:
            query = query.where(table.c.status.in_(wanted))
        with self.repository.engine.connect() as conn, conn.begin():
            ids = conn.execute(query).scalars().all()
        found = [d for d in map(self._get_if_kept, ids) if d is not None]
        if active_only or attention:
            return [d for d in found if d.status in wanted]  # a dead one failed just now
        return found

    def _get_if_kept(self, deployment_id: str) -> Deployment | None:
        try:
            return self.get(deployment_id)
        except NotFound:  # dismissed (or its version deleted) since it was listed
            return None

    def active_for(self, version: ModelVersion) -> Deployment | None:
        with self.repository.engine.connect() as conn, conn.begin():
            model_id = self.repository.model_id(conn, version.name)
            ids = conn.execute(_active(model_id, version.version)).scalars().all()
        for deployment_id in ids:
            deployment = self.get(deployment_id)
            if deployment.active:
                return deployment
        return None

    def _insert(
        self,
        deployment_id: str,
        version: ModelVersion,
        target: str,
        uri: str,
        log_file: str,
        by: str | None = None,
    ) -> None:
        now = db.utcnow()
        with db.write_transaction(self.repository.engine) as conn:
            model_id = self.repository.model_id(conn, version.name)
            # Checked again under the write lock: two deploys of one version cannot both win.
            live = conn.execute(_active(model_id, version.version)).first()
            if live is not None:
                raise _already_deployed(version, live.id)
            conn.execute(
                insert(table).values(
                    id=deployment_id,
                    model_id=model_id,
                    version=version.version,
                    target=target,
                    status="starting",
                    url="",
                    model_uri=uri,
                    details={"log_file": log_file},
                    error="",
                    created_at=now,
                    updated_at=now,
                    created_by=db.created_by(by),
                )
            )

    def _update(
        self, deployment_id: str, *, where_status: str | None = None, **values: Any
    ) -> Deployment:
        """Change the row (only while it is in `where_status`, when given); the row after."""
        condition = table.c.id == deployment_id
        if where_status is not None:
            condition = condition & (table.c.status == where_status)
        with db.write_transaction(self.repository.engine) as conn:
            conn.execute(update(table).where(condition).values(**values, updated_at=db.utcnow()))
        return self._read(deployment_id)

    def _read(self, deployment_id: str) -> Deployment:
        m = db.models
        with self.repository.engine.connect() as conn, conn.begin():
            row = conn.execute(
                select(table, m.c.name)
                .join(m, m.c.id == table.c.model_id)
                .where(table.c.id == deployment_id)
            ).first()
        if row is None:
            raise NotFound(f"No deployment {deployment_id!r}.", remedy=remedy("list_deployments"))
        return Deployment(
            id=row.id,
            name=row.name,
            version=row.version,
            target=row.target,
            status=row.status,
            url=row.url,
            model_uri=row.model_uri,
            details=dict(row.details),
            error=row.error,
            created_at=db.as_utc(row.created_at),
            updated_at=db.as_utc(row.updated_at),
            created_by=row.created_by,
        )


def _start_limit(target: str) -> float:
    """How long the target may take to start (longer than any start of it takes)."""
    found = targets().get(target)
    return found.start_limit_seconds if found is not None else DeploymentTarget.start_limit_seconds


def _active(model_id: int, version: int) -> Any:
    return select(table.c.id).where(
        table.c.model_id == model_id,
        table.c.version == version,
        table.c.status.in_(DEPLOYED_STATUSES),
    )


def _already_deployed(version: ModelVersion, deployment_id: str) -> Conflict:
    return Conflict(
        f"{version.ref} is already deployed ({deployment_id}); undeploy it first.",
        remedy=remedy("undeploy", deployment=deployment_id),
    )
