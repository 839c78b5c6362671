"""skops' lists of trusted types, without importing every scikit-learn module.

`import skops.io` computes, as it is imported, the names of the types it trusts: every
scikit-learn estimator (`sklearn.utils.all_estimators()`, which imports every scikit-learn
module), a few internal scikit-learn types (importing `sklearn.ensemble`), and numpy's and
scipy's ufuncs (each found by a search through every loaded module): about 0.8 s in each fresh
process that loads a skops model (a first `sparkserve score`, an endpoint that is not forked,
an image's start). skops keeps only the names, in `skops.io._trusted_types`. So the names are
recorded once per installation of scikit-learn, skops, numpy and scipy, in the user's cache,
from skops' own module as this process imported it; later processes give skops a module with
the recorded names in its place. A model's own classes are imported when it is loaded, as
before. The lists are the same (tests compare them with skops' own)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import types
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


TRUSTED_MODULE = "skops.io._trusted_types"


def import_skops_io() -> None:
    """Import `skops.io`, with the recorded trusted names when there are some."""
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
            _import_and_record(cache)
            return
        stand_in = types.ModuleType(TRUSTED_MODULE, "skops' trusted names, as recorded")
        stand_in.__dict__.update(names)
        stand_in.all_estimators = sklearn.utils.all_estimators  # type: ignore[attr-defined]
        sys.modules[TRUSTED_MODULE] = stand_in
        try:
            import skops.io
        except ImportError:  # a name this skops wants and the record lacks: its own module
            for name in [m for m in sys.modules if m == "skops.io" or m.startswith("skops.io.")]:
                del sys.modules[name]
            _import_and_record(cache)
            return
        skops.io._trusted_types = stand_in  # type: ignore[attr-defined]


def _import_and_record(cache: Path | None) -> None:
    try:
        import skops.io  # noqa: F401  (the real walk, recorded for next time)
    except ImportError:
        return
    if cache is not None:
        _write(cache, _trusted_names(sys.modules[TRUSTED_MODULE]))


def _trusted_names(module: Any) -> dict[str, list[str]]:
    """The module's lists of names (what other skops modules import from it)."""
    return {
        key: value
        for key, value in vars(module).items()
        if key.isupper() and isinstance(value, list) and all(isinstance(v, str) for v in value)
    }


def _cache_file() -> Path | None:
    """The names' file for this scikit-learn, skops, numpy and scipy, or None when they
    cannot be found."""
    from importlib import metadata

    import sklearn

    try:
        versions = [metadata.version(name) for name in ("skops", "numpy", "scipy")]
    except metadata.PackageNotFoundError:
        return None
    init = Path(sklearn.__file__)
    try:
        installed = init.stat().st_mtime_ns
    except OSError:
        return None
    key = f"{sklearn.__version__}|{versions}|{init}|{installed}|{sys.version_info[:2]}|v2"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "jupyter_sparkserve" / f"sklearn-estimators-{digest}.json"


def _read(path: Path) -> dict[str, list[str]] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = record.get("names") if isinstance(record, dict) else None
    if not isinstance(names, dict) or "SKLEARN_ESTIMATOR_TYPE_NAMES" not in names:
        return None
    if not all(
        isinstance(key, str)
        and key.isupper()
        and isinstance(value, list)
        and all(isinstance(item, str) for item in value)
        for key, value in names.items()
    ):
        return None
    return names


def _write(path: Path, names: dict[str, list[str]]) -> None:
    # A read-only home (an image's user) just keeps paying for the walk.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"names": names}))
        os.replace(temp, path)
    except OSError:
        pass
