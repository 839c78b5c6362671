"""Deployments: model versions served somewhere, recorded in the repository database.

Deploy serves the version's registered MLflow model (`models:/NAME/N`) and is refused for a
version that is not registered; Undeploy is refused for a deployment that is not up. Reading
a deployment checks its endpoint: one whose process died is marked `failed` with the tail of
its log. The only target so far is `local` (a detached endpoint process on this machine).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from ..errors import Conflict, InvalidInput, NotFound
from ..repository import ModelRef, ModelRepository, ModelVersion
from ..repository import database as db
from ..snippets import Snippet
from .mlflow import MlflowRegistry
from .targets import TARGETS

ACTIVE = ("starting", "running")
# Longer than any start takes (the endpoint has 120 s to answer /ping): a row still
# 'starting' after this belongs to a deploy whose process died.
STARTING_LIMIT_SECONDS = 600


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

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

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
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class Deployments:
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository
        self.root = repository.settings.home / "deployments"

    def deploy(
        self,
        ref: str | ModelRef,
        target: str = "local",
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        token: str | None = None,
    ) -> Deployment:
        deployment = self.begin(ref, target)
        return self.launch(deployment.id, host=host, port=port, token=token)

    def begin(self, ref: str | ModelRef, target: str = "local") -> Deployment:
        """First half of `deploy`: check the rules and record the deployment as `starting`
        (the REST API answers with it at once and runs `launch` in the background)."""
        if target not in TARGETS:
            raise InvalidInput(f"Unknown target {target!r}: choose one of {', '.join(TARGETS)}.")
        version = self.repository.resolve(ref)
        registrations = MlflowRegistry(self.repository).registrations(version.ref)
        if not registrations:
            raise Conflict(
                f"{version.ref} is not registered in MLflow, and Deploy serves the registered "
                f"model: register it first (sparkserve register {version.ref})."
            )
        if self.active_for(version) is not None:  # refreshes a dead one to failed first
            raise Conflict(f"{version.ref} is already deployed; undeploy it first.")
        deployment_id = uuid.uuid4().hex[:12]
        log_file = self.root / deployment_id / "log"
        self._insert(
            deployment_id, version, target, registrations[0].model_uri, {"log_file": str(log_file)}
        )
        return self._read(deployment_id)

    def launch(
        self,
        deployment_id: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        token: str | None = None,
    ) -> Deployment:
        """Second half of `deploy`: fetch the registered model and start the endpoint; the
        deployment ends `running`, or `failed` with the reason."""
        deployment = self._read(deployment_id)
        if deployment.status != "starting":
            raise Conflict(f"Deployment {deployment_id} is {deployment.status}, not starting.")
        folder = self.root / deployment_id
        served = folder / "model"
        try:
            # Fetched from the MLflow store: the deployment serves what MLflow registered.
            self.repository.fetch_model(deployment.model_uri, served)
            started = TARGETS[deployment.target].start(
                served, folder, {"host": host, "port": port}, token
            )
        except BaseException as error:  # an interrupt too: never leave a row 'starting'
            shutil.rmtree(served, ignore_errors=True)  # the log stays, to read what went wrong
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            self._update(deployment_id, status="failed", error=message)
            raise
        # Only a row still 'starting' becomes running: one marked failed or stopped meanwhile
        # stays as it is, and the endpoint just started for it is stopped again.
        with db.write_transaction(self.repository.engine) as conn:
            claimed = conn.execute(
                update(db.deployments)
                .where(db.deployments.c.id == deployment_id, db.deployments.c.status == "starting")
                .values(
                    status="running",
                    url=started.url,
                    details=started.details,
                    updated_at=db.utcnow(),
                )
            ).rowcount
        if not claimed:
            TARGETS[deployment.target].stop(started.details)
            shutil.rmtree(served, ignore_errors=True)
        return self._read(deployment_id)

    def undeploy(self, deployment_id: str) -> Deployment:
        deployment = self.get(deployment_id)
        if not deployment.active:
            raise Conflict(
                f"Deployment {deployment_id} of {deployment.ref} is {deployment.status}, not "
                "deployed: there is nothing to undeploy."
            )
        if deployment.status == "starting":  # no endpoint yet: nothing to stop
            raise Conflict(
                f"Deployment {deployment_id} of {deployment.ref} is still starting; wait until "
                "it is running, then undeploy it."
            )
        TARGETS[deployment.target].stop(deployment.details)
        shutil.rmtree(self.root / deployment_id / "model", ignore_errors=True)
        return self._update(deployment_id, status="stopped", error="")

    def get(self, deployment_id: str) -> Deployment:
        """The deployment as it is now: a running one whose endpoint died becomes failed."""
        deployment = self._read(deployment_id)
        age = (db.utcnow() - deployment.updated_at).total_seconds()
        if deployment.status == "starting" and age > STARTING_LIMIT_SECONDS:
            return self._update(
                deployment_id,
                status="failed",
                error="The process deploying it stopped before the endpoint came up.",
            )
        if deployment.status == "running":
            state = TARGETS[deployment.target].state(deployment.details)
            if not state.serving:
                deployment = self._update(deployment_id, status="failed", error=state.message)
        return deployment

    def snippets(self, deployment_id: str) -> list[Snippet]:
        """Code that scores the version's input example against the deployment."""
        deployment = self.get(deployment_id)
        if not deployment.active:
            raise Conflict(f"Deployment {deployment.id} is {deployment.status}: no endpoint.")
        version = self.repository.resolve(deployment.ref)
        return TARGETS[deployment.target].snippets(version, deployment.url, deployment.details)

    def exists(self, deployment_id: str) -> bool:
        with self.repository.engine.connect() as conn, conn.begin():
            found = conn.execute(
                select(db.deployments.c.id).where(db.deployments.c.id == deployment_id)
            ).first()
        return found is not None

    def list(self, *, active_only: bool = False) -> list[Deployment]:
        d = db.deployments
        query = select(d.c.id).order_by(d.c.created_at.desc())
        if active_only:
            query = query.where(d.c.status.in_(ACTIVE))
        with self.repository.engine.connect() as conn, conn.begin():
            ids = conn.execute(query).scalars().all()
        return [self.get(deployment_id) for deployment_id in ids]

    def active_for(self, version: ModelVersion) -> Deployment | None:
        d = db.deployments
        with self.repository.engine.connect() as conn, conn.begin():
            model_id = self.repository.model_id(conn, version.name)
            ids = (
                conn.execute(
                    select(d.c.id).where(
                        d.c.model_id == model_id,
                        d.c.version == version.version,
                        d.c.status.in_(ACTIVE),
                    )
                )
                .scalars()
                .all()
            )
        for deployment_id in ids:
            deployment = self.get(deployment_id)
            if deployment.active:
                return deployment
        return None

    def _insert(
        self, deployment_id: str, version: ModelVersion, target: str, uri: str, details: dict
    ) -> None:
        now = db.utcnow()
        d = db.deployments
        with db.write_transaction(self.repository.engine) as conn:
            model_id = self.repository.model_id(conn, version.name)
            # Checked again under the write lock: two deploys of one version cannot both win.
            live = conn.execute(
                select(d.c.id).where(
                    d.c.model_id == model_id,
                    d.c.version == version.version,
                    d.c.status.in_(ACTIVE),
                )
            ).first()
            if live is not None:
                raise Conflict(f"{version.ref} is already deployed; undeploy it first.")
            conn.execute(
                insert(db.deployments).values(
                    id=deployment_id,
                    model_id=model_id,
                    version=version.version,
                    target=target,
                    status="starting",
                    url="",
                    model_uri=uri,
                    details=details,
                    error="",
                    created_at=now,
                    updated_at=now,
                )
            )

    def _update(self, deployment_id: str, **values: Any) -> Deployment:
        with db.write_transaction(self.repository.engine) as conn:
            conn.execute(
                update(db.deployments)
                .where(db.deployments.c.id == deployment_id)
                .values(**values, updated_at=db.utcnow())
            )
        return self._read(deployment_id)

    def _read(self, deployment_id: str) -> Deployment:
        d, m = db.deployments, db.models
        with self.repository.engine.connect() as conn, conn.begin():
            row = conn.execute(
                select(d, m.c.name).join(m, m.c.id == d.c.model_id).where(d.c.id == deployment_id)
            ).first()
        if row is None:
            raise NotFound(
                f"No deployment {deployment_id!r}: `sparkserve deployments list` shows them."
            )
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
        )
