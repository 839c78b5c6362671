"""Saving a Python object as an MLflow model with the flavor that fits it.

The flavor is found from the object's class: a `mlflow.pyfunc.PythonModel` is saved with the
pyfunc flavor, anything else by the MLflow flavor named after the library that defined its
class (scikit-learn, XGBoost, LightGBM, PyTorch, ...), so any flavor the user has installed
works without sparkserve knowing it in advance. `flavor=` picks one explicitly.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UnsupportedModel

# Top-level module of the model's class -> MLflow flavor module, where the names differ.
_FLAVOR_BY_PACKAGE = {
    "sklearn": "sklearn",
    "imblearn": "sklearn",
    "torch": "pytorch",
    "lightning": "pytorch",
    "pytorch_lightning": "pytorch",
    "tf_keras": "tensorflow",
    "pyspark": "spark",
    "sentence_transformers": "sentence_transformers",
}


def detect_flavor(model: Any) -> str:
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return "pyfunc"
    for cls in inspect.getmro(type(model)):
        package = cls.__module__.split(".")[0]
        # `__main__` would import mlflow's CLI entry point; builtins are never a flavor.
        if package.startswith("_") or package in ("builtins", "abc", "typing", "mlflow"):
            continue
        flavor = _FLAVOR_BY_PACKAGE.get(package, package)
        module = _flavor_module(flavor)
        if module is not None and hasattr(module, "save_model"):
            return flavor
    raise UnsupportedModel(
        f"Cannot tell how to save a {type(model).__module__}.{type(model).__qualname__}: no "
        "installed MLflow flavor matches its library. Pass flavor='<mlflow flavor>' (such as "
        "'sklearn' or 'xgboost'), or wrap it in an mlflow.pyfunc.PythonModel."
    )


def save_python_model(
    model: Any,
    path: Path,
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    flavor_options: Mapping[str, Any] | None = None,
) -> str:
    """Write `model` as an MLflow model folder at `path` (which must not exist). Returns the
    flavor used. `flavor_options` go to `mlflow.<flavor>.save_model` as they are (for example
    `skops_trusted_types` for a scikit-learn pipeline with a custom transformer)."""
    from mlflow.exceptions import MlflowException

    flavor = flavor or detect_flavor(model)
    module = _flavor_module(flavor)
    if module is None or not hasattr(module, "save_model"):
        raise UnsupportedModel(
            f"MLflow has no flavor {flavor!r} here (mlflow.{flavor} cannot be imported or has no "
            "save_model). Install the library it needs, or choose another flavor."
        )
    options: dict[str, Any] = {"input_example": input_example, "signature": signature}
    if pip_requirements is not None:
        options["pip_requirements"] = pip_requirements
    if extra_pip_requirements is not None:
        options["extra_pip_requirements"] = extra_pip_requirements
    options.update(flavor_options or {})
    if flavor == "sklearn":
        _trust_own_sklearn_types(model, options)
    try:
        if flavor == "pyfunc":
            module.save_model(str(path), python_model=model, **options)
        else:
            module.save_model(model, str(path), **options)
    except MlflowException as error:
        raise UnsupportedModel(
            f"MLflow could not save this model with the {flavor} flavor: {error.message} "
            f"(options for mlflow.{flavor}.save_model go in flavor_options=...)"
        ) from None
    except TypeError as error:
        if flavor_options:
            raise UnsupportedModel(
                f"mlflow.{flavor}.save_model refused the flavor options "
                f"{sorted(flavor_options)}: {error}"
            ) from None
        raise
    return flavor


def _trust_own_sklearn_types(model: Any, options: dict[str, Any]) -> None:
    """Let MLflow's skops format load back the object the user is saving right now.

    skops refuses any type not on its safe list (even scikit-learn's own tree storage, so every
    decision tree, random forest and gradient boosting model) unless told to trust it. The
    danger skops guards against is a tampered file from elsewhere; here the user hands us the
    object itself, so we trust exactly the types it contains, and record them in MLmodel as
    MLflow does. Explicit `skops_trusted_types` or another `serialization_format` win.
    """
    if "skops_trusted_types" in options or options.get("serialization_format") not in (
        None,
        "skops",
    ):
        return
    try:
        import skops.io
    except ImportError:  # MLflow falls back to cloudpickle without skops
        return
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    options["serialization_format"] = "skops"
    options["skops_trusted_types"] = untrusted or None


def _flavor_module(flavor: str) -> Any | None:
    try:
        return importlib.import_module(f"mlflow.{flavor}")
    except ImportError:
        return None
