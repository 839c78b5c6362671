"""Run MLflow calls against the repository's tracking store without leaking it.

MLflow 3 does not pass `tracking_uri` all the way down: `download_artifacts(tracking_uri=...)`
of a `runs:/` or `models:/` URI resolves the logged model through a client built on the
*global* tracking URI. So for the duration of such a call the global URIs are set to the
repository's and then put back exactly as they were (module state and the environment
variables MLflow mirrors them into), under a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.RLock()
_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_store(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    import mlflow
    from mlflow.tracking import _model_registry, _tracking_service

    with _lock:
        saved_env = {name: os.environ.get(name) for name in _ENV}
        saved_tracking = _tracking_service.utils._tracking_uri
        saved_registry = _model_registry.utils._registry_uri
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri or tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)
            _model_registry.utils._registry_uri = saved_registry
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
