"""Register and Re-register: a repository version becomes an MLflow registered model version.

The version's folder is logged as the artifacts of an MLflow run (experiment `sparkserve`),
then registered under the model's name from that run's artifact URI, so `models:/NAME/N`
keeps working whatever later happens to the repository. Each registration is recorded in the
repository database: Register is for a version never registered, Re-register makes a new
MLflow version of one that was.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from ..config import Settings, safe_uri
from ..errors import Conflict, NotFound, remedy
from ..repository import ModelRef, ModelRepository, ModelVersion
from ..repository import database as db
from ..repository.mlflow_uris import mlflow_store
from . import tables

EXPERIMENT = "sparkserve"
# Held while `preload` runs: a Register or a fetch waits for it instead of importing MLflow
# on a second thread at the same time (MLflow's modules import each other in cycles).
_preloading = threading.Lock()
log = logging.getLogger("sparkserve")


def preload_in_background(settings: Settings) -> bool:
    """In a long-running process (the Jupyter server), import MLflow's tracking client and
    open the repository's MLflow stores on a thread of their own, once: MLflow keeps its stores
    for the process, so the first Register and Deploy then take tens of milliseconds instead
    of seconds. Not with the warm scorer off (nothing is preloaded then). Whether it began."""
    from ..warm import protocol

    if protocol.mode() == "off":
        return False
    _preloading.acquire()  # here, so that a Register arriving at once already waits

    def preload() -> None:
        try:
            import mlflow.artifacts  # noqa: F401 (what Deploy fetches the model with)

            tracking_uri = settings.mlflow_tracking_uri
            registry_uri = settings.mlflow_registry_uri or tracking_uri
            with mlflow_store(tracking_uri, registry_uri):
                client = _client(tracking_uri, registry_uri)  # opens the tracking store
                client.search_registered_models(max_results=1)  # and the registry's
        except Exception as error:  # a store that is down now may be up by the first Register
            log.warning("sparkserve: could not preload MLflow's stores: %s", error)
        finally:
            _preloading.release()

    threading.Thread(target=preload, name="sparkserve-mlflow-preload", daemon=True).start()
    return True


def wait_for_preload() -> None:
    """Return once a preload in progress has finished (at once when there is none)."""
    with _preloading:
        pass


def _client(tracking_uri: str, registry_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri, registry_uri)


@dataclass(frozen=True)
class Registration:
    name: str
    version: int
    mlflow_name: str
    mlflow_version: int
    source: str
    run_id: str
    created_at: datetime

    @property
    def model_uri(self) -> str:
        return f"models:/{self.mlflow_name}/{self.mlflow_version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": f"{self.name}:{self.version}",
            "mlflow_name": self.mlflow_name,
            "mlflow_version": self.mlflow_version,
            "model_uri": self.model_uri,
            "source": self.source,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
        }


class MlflowRegistry:
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository
        settings = repository.settings
        self.tracking_uri = settings.mlflow_tracking_uri
        self.registry_uri = settings.mlflow_registry_uri or settings.mlflow_tracking_uri

    def registrations(self, ref: str | ModelRef) -> list[Registration]:
        """Every registration of the version, newest first."""
        version = self.repository.resolve(ref)
        r = tables.mlflow_registrations
        with self.repository.engine.connect() as conn, conn.begin():
            model_id = self.repository.model_id(conn, version.name)
            rows = conn.execute(
                select(r)
                .where(r.c.model_id == model_id, r.c.version == version.version)
                .where(in_this_registry(r, self.repository.settings))
                .order_by(r.c.id.desc())
            ).all()
        return [_registration(version, row) for row in rows]

    def register(self, ref: str | ModelRef) -> Registration:
        version = self.repository.resolve(ref)
        if self.registrations(version.ref):
            raise Conflict(
                f"{version.ref} is already registered in MLflow; Re-register makes a new MLflow "
                "version of it.",
                remedy=remedy("reregister", ref=version.ref),
            )
        return self._register(version)

    def reregister(self, ref: str | ModelRef) -> Registration:
        version = self.repository.resolve(ref)
        if not self.registrations(version.ref):
            raise Conflict(
                f"{version.ref} was never registered in MLflow: register it first.",
                remedy=remedy("register", ref=version.ref),
            )
        return self._register(version)

    def _register(self, version: ModelVersion) -> Registration:
        wait_for_preload()
        from mlflow.exceptions import MlflowException

        try:
            with mlflow_store(self.tracking_uri, self.registry_uri):
                client = _client(self.tracking_uri, self.registry_uri)
                run = client.create_run(
                    self._experiment_id(client),
                    tags={"sparkserve.model": version.ref, "mlflow.runName": version.ref},
                )
                client.log_artifacts(run.info.run_id, str(version.local_path()), "model")
                client.set_terminated(run.info.run_id)
                source = f"{run.info.artifact_uri}/model"
                try:
                    client.create_registered_model(version.name)
                except MlflowException as error:
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                mlflow_version = client.create_model_version(
                    version.name,
                    source,
                    run_id=run.info.run_id,
                    tags={"sparkserve.ref": version.ref},
                    description=version.description or None,
                )
        except MlflowException as error:
            raise NotFound(
                f"MLflow at {safe_uri(self.tracking_uri)} refused to register {version.ref}: "
                f"{error.message}"
            ) from None
        now = db.utcnow()
        with db.write_transaction(self.repository.engine) as conn:
            model_id = self.repository.model_id(conn, version.name)
            conn.execute(
                insert(tables.mlflow_registrations).values(
                    model_id=model_id,
                    version=version.version,
                    mlflow_name=version.name,
                    mlflow_version=int(mlflow_version.version),
                    source=source,
                    run_id=run.info.run_id,
                    created_at=now,
                    registry=self.repository.settings.mlflow_registry,
                )
            )
        return self.registrations(version.ref)[0]

    def _experiment_id(self, client: Any) -> str:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return str(experiment.experiment_id)
        # With the embedded store, keep run artifacts under SPARKSERVE_HOME (not ./mlruns);
        # a tracking server decides where its artifacts go.
        location = None
        if self.tracking_uri.startswith("sqlite:") or self.tracking_uri.startswith("file:"):
            location = (self.repository.settings.home / "mlartifacts").as_uri()
        try:
            return str(client.create_experiment(EXPERIMENT, artifact_location=location))
        except Exception:  # created meanwhile by another process
            return str(client.get_experiment_by_name(EXPERIMENT).experiment_id)


def in_this_registry(registrations: Any, settings: Settings) -> Any:
    """Registrations made in the registry these settings write to: on a shared repository,
    one made in another user's registry does not count here (its `models:/` URI names a
    model only there). Those from before registries were recorded count everywhere."""
    return registrations.c.registry.in_((settings.mlflow_registry, ""))


def _registration(version: ModelVersion, row: Any) -> Registration:
    return Registration(
        name=version.name,
        version=version.version,
        mlflow_name=row.mlflow_name,
        mlflow_version=row.mlflow_version,
        source=row.source,
        run_id=row.run_id,
        created_at=db.as_utc(row.created_at),
    )
