"""MLflow model folders: checking one, reading its MLmodel, and fetching one from any MLflow
URI into the repository's staging area."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..config import Settings, safe_uri
from ..errors import NotAnMLflowModel, NotFound
from .mlflow_uris import mlflow_store
from .records import PYFUNC

MLMODEL = "MLmodel"


def fetch(settings: Settings, uri: str, target: Path) -> None:
    """Put the MLflow model at `uri` (a local folder or any MLflow artifact URI) at
    `target`."""
    local = Path(uri)
    if local.is_absolute():
        check_mlflow_model(local, uri)
        shutil.copytree(local, target)
        return
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    download_dir = target.parent / "download"
    tracking_uri = settings.mlflow_tracking_uri
    registry_uri = settings.mlflow_registry_uri or tracking_uri
    try:
        with mlflow_store(tracking_uri, registry_uri):
            fetched = mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=str(download_dir),
                tracking_uri=tracking_uri,
                registry_uri=registry_uri,
            )
    except MlflowException as error:
        raise NotFound(
            f"Could not fetch {uri} from MLflow ({safe_uri(tracking_uri)}): {error.message}"
        ) from None
    check_mlflow_model(Path(fetched), uri)
    os.rename(fetched, target)


def check_mlflow_model(path: Path, shown_as: str) -> None:
    if not path.exists():
        raise NotFound(f"No such file or folder: {shown_as}.")
    if not (path / MLMODEL).is_file():
        raise NotAnMLflowModel(
            f"{shown_as} is not an MLflow model folder: it has no {MLMODEL} file. Save it with "
            "mlflow.<flavor>.save_model or log it with mlflow.<flavor>.log_model first."
        )


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    from mlflow.models import Model

    mlmodel = Model.load(str(model_dir / MLMODEL))
    signature = None
    if mlmodel.signature is not None:
        signature = {
            key: json.loads(value) if isinstance(value, str) else value
            for key, value in mlmodel.signature.to_dict().items()
        }
    flavors = sorted(mlmodel.flavors, key=lambda flavor: flavor == PYFUNC)
    return {
        "flavors": flavors,
        "signature": signature,
        "has_input_example": mlmodel.saved_input_example_info is not None,
        "mlflow_version": mlmodel.mlflow_version or "",
    }


def primary_flavor(flavors: list[str]) -> str:
    return next((flavor for flavor in flavors if flavor != PYFUNC), PYFUNC)
