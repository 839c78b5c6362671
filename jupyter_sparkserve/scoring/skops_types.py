"""skops' list of trusted scikit-learn types, without importing every scikit-learn module.

`import skops.io` lists the estimators it trusts by calling `sklearn.utils.all_estimators()`,
which imports every scikit-learn module: about half a second in each fresh process that loads
a model (a first `sparkserve score`, an endpoint that is not forked, an image's start). skops
keeps only their names. So the names are recorded once per installation of scikit-learn and
skops, in the user's cache, and skops is given stand-in classes carrying the same names; a
model's own classes are imported when it is loaded, as before. The trusted list is the same
(tests compare it with skops' own)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

_lock = threading.Lock()


def prepare_loading(model_path: str | os.PathLike[str]) -> None:
    """Import `skops.io` when the model at `model_path` is a scikit-learn one saved with skops
    (MLflow's loader then finds it imported). Call it before MLflow is imported: skops also
    names numpy's and scipy's ufuncs by searching every loaded module, so it costs less the
    fewer there are."""
    if "skops.io" in sys.modules:
        return
    try:
        with open(os.path.join(model_path, "MLmodel")) as file:
            flavors = yaml.safe_load(file).get("flavors") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return  # the loader will say what is wrong with the folder
    if (flavors.get("sklearn") or {}).get("serialization_format") == "skops":
        import_skops_io()


def import_skops_io() -> None:
    """Import `skops.io` without walking every scikit-learn module when its names are known."""
    if "skops.io" in sys.modules:
        return
    try:
        import sklearn.utils
    except ImportError:  # no scikit-learn, so no skops model to load
        return
    with _lock:
        if "skops.io" in sys.modules:
            return
        cache = _cache_file()
        names = _read(cache) if cache is not None else None
        if names is None:
            try:
                import skops.io  # noqa: F401  (the real walk, recorded for next time)
            except ImportError:
                return
            if cache is not None:
                _write(cache, [[c.__module__, c.__name__] for _, c in _all_estimators()])
            return
        real = sklearn.utils.all_estimators
        stand_ins = [(name, type(name, (), {"__module__": module})) for module, name in names]
        sklearn.utils.all_estimators = lambda *args, **kwargs: stand_ins
        try:
            import skops.io._trusted_types as trusted
        except ImportError:
            return
        finally:
            sklearn.utils.all_estimators = real
        trusted.all_estimators = real  # it keeps its own reference: give it the real one back


def _all_estimators() -> list[tuple[str, Any]]:
    from sklearn.utils import all_estimators

    return list(all_estimators())


def _cache_file() -> Path | None:
    """The names' file for this scikit-learn and skops, or None when they cannot be found."""
    from importlib import metadata

    import sklearn

    try:
        skops_version = metadata.version("skops")
    except metadata.PackageNotFoundError:
        return None
    init = Path(sklearn.__file__)
    try:
        installed = init.stat().st_mtime_ns
    except OSError:
        return None
    key = f"{sklearn.__version__}|{skops_version}|{init}|{installed}|{sys.version_info[:2]}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "jupyter_sparkserve" / f"sklearn-estimators-{digest}.json"


def _read(path: Path) -> list[tuple[str, str]] | None:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(names, list) or not all(
        isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item)
        for item in names
    ):
        return None
    return [(module, name) for module, name in names]


def _write(path: Path, names: list[list[str]]) -> None:
    # A read-only home (an image's user) just keeps paying for the walk.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(names))
        os.replace(temp, path)
    except OSError:
        pass
