"""The build context of a model version's image: a Dockerfile, pinned requirements, their
wheels, sparkserve's own code and the model folder.

Requirements are resolved on this machine at build time: the model's own (MLflow's
requirements.txt, `mlflow` swapped for `mlflow-skinny`, which is all pyfunc serving needs)
plus what the endpoint and the batch scorer import, each pinned to the version installed
here (what the model was trained and tested with). Their wheels are downloaded once per set
of requirements and cached, so the image builds without network access and the container
installs nothing when it starts. The Dockerfile puts the environment before the model: a new
version of the same model reuses every layer but the last.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..config import BASE_IMAGE_ENV
from ..errors import Cancelled, InvalidInput, SparkserveError

MODEL_DIR = "/opt/ml/model"  # SageMaker's layout; AzureML's custom containers take any
APP_DIR = "/opt/sparkserve"
USER_ID = 10001
PORT = 8080
DEFAULT_BASE_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
# What `serve` and `score` import besides the model's own requirements.
SERVING_PACKAGES = (
    "mlflow-skinny",
    "numpy",
    "pandas",
    "pyarrow",
    "orjson",
    "uvicorn",
    "uvloop",
    "httptools",
    "pyyaml",
)
# Packages whose distribution is named differently from what is installed here.
_INSTALLED_AS = {"mlflow-skinny": ("mlflow-skinny", "mlflow")}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
# Left out of the copy of sparkserve's code: the JupyterLab bundle and bytecode.
_NOT_COPIED = shutil.ignore_patterns("labextension", "__pycache__", "*.pyc")


class ImageBuildError(SparkserveError):
    code = "IMAGE_BUILD_FAILED"
    http_status = 500


@dataclass(frozen=True)
class ImageSpec:
    """What one image holds and is called."""

    ref: str  # NAME:VERSION
    model_dir: Path
    tag: str
    base_image: str = DEFAULT_BASE_IMAGE
    labels: Mapping[str, str] = field(default_factory=dict)  # more OCI labels (model URI, ...)


def wheel_cache() -> Path:
    """Where downloaded wheels are kept between builds: a cache like pip's, shared by every
    repository of this user."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "jupyter_sparkserve" / "wheels"


def base_image(given: str | None = None) -> str:
    return given or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE


def image_tag(name: str, version: int) -> str:
    """The default tag: `sparkserve/NAME:VERSION` (names are already valid tag parts once
    lower-cased)."""
    return f"sparkserve/{name.lower()}:{version}"


def requirements(model_dir: Path) -> list[str]:
    """Pinned requirements for the image, sorted: the model's and the endpoint's."""
    wanted: dict[str, str] = {}
    model_requirements = model_dir / "requirements.txt"
    lines = model_requirements.read_text().splitlines() if model_requirements.exists() else []
    for line in [*lines, *_loader_packages(model_dir), *SERVING_PACKAGES]:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue  # options such as --index-url: the wheels come from this machine's pip
        match = _REQUIREMENT.match(line)
        if match is None:
            raise InvalidInput(f"Cannot read the requirement {line!r} in {model_requirements}.")
        name, extras, spec = match.group(1), match.group(2) or "", match.group(3).strip()
        key = _canonical(name)
        if key == "mlflow":
            key, name, extras, spec = "mlflow-skinny", "mlflow-skinny", "", ""
        pinned = _installed_version(key)
        requirement = f"{name}{extras}=={pinned}" if pinned else f"{name}{extras}{spec}"
        wanted.setdefault(key, requirement)
    return sorted(wanted.values(), key=str.lower)


def _loader_packages(model_dir: Path) -> list[str]:
    """Packages a flavor's loader imports that a model's own requirements may leave out
    (scikit-learn models saved with skops need `skops`, pickled ones `cloudpickle`)."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.exists():
        return []
    import yaml

    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    found = []
    for config in flavors.values():
        if not isinstance(config, dict):
            continue
        if config.get("serialization_format") in ("skops", "cloudpickle"):
            found.append(config["serialization_format"])
        if "cloudpickle_version" in config:
            found.append("cloudpickle")
    return found


def write_context(
    spec: ImageSpec,
    directory: Path,
    *,
    wheel_cache: Path,
    log: Callable[[str], None] = lambda _line: None,
    cancel: threading.Event | None = None,
) -> Path:
    """Write the build context into `directory` (created, must be empty); the Dockerfile's
    path. The wheels come from `wheel_cache`, downloaded there first when missing (stopped
    by `cancel`)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise InvalidInput(f"{directory} is not empty: give a new or empty folder.")
    pinned = requirements(spec.model_dir)
    (directory / "requirements.txt").write_text("\n".join(pinned) + "\n")
    wheels = _wheelhouse(pinned, wheel_cache, log, cancel)
    _link_tree(wheels, directory / "wheels")
    package = Path(__file__).resolve().parent.parent
    shutil.copytree(package, directory / "sparkserve" / package.name, ignore=_NOT_COPIED)
    shutil.copytree(spec.model_dir, directory / "model", ignore=_NOT_COPIED)
    (directory / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    dockerfile = directory / "Dockerfile"
    dockerfile.write_text(render_dockerfile(spec))
    return dockerfile


def labels(spec: ImageSpec) -> dict[str, str]:
    """OCI labels: which model version, which sparkserve, and the model's signature."""
    name, _, version = spec.ref.partition(":")
    signature = ""
    mlmodel = spec.model_dir / "MLmodel"
    if mlmodel.exists():
        import yaml

        signature = json.dumps((yaml.safe_load(mlmodel.read_text()) or {}).get("signature"))
    return {
        "org.opencontainers.image.title": f"{name} {version} (jupyter_sparkserve)",
        "org.opencontainers.image.version": version,
        "io.sparkserve.model.name": name,
        "io.sparkserve.model.version": version,
        "io.sparkserve.model.signature": signature,
        "io.sparkserve.version": __version__,
        **spec.labels,
    }


def render_dockerfile(spec: ImageSpec) -> str:
    label_lines = " \\\n      ".join(
        f"{key}={json.dumps(value)}" for key, value in sorted(labels(spec).items())
    )
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    version_tuple = python.replace(".", ", ")
    return f"""\
# Generated by jupyter_sparkserve {__version__} for model {spec.ref}.
# Build it again with `docker build -t {spec.tag} .` in this folder (or podman build).
#
# The environment is installed at build time from ./wheels (no network needed) and the
# container installs nothing when it starts. The environment comes before the model, so a
# new version of the same model reuses every layer but the model's.
#   docker run -p 127.0.0.1:8080:8080 {spec.tag}                   # serve (MLflow's protocol)
#   docker run -v $PWD:/data {spec.tag} score /data/in.csv /data/out.csv   # batch scoring

FROM {spec.base_image} AS environment
COPY requirements.txt {APP_DIR}/requirements.txt
COPY wheels /tmp/wheels
RUN python3 -c "import sys; sys.exit(0 if sys.version_info[:2] == ({version_tuple}) else \\
      'The base image needs Python {python}: the wheels in this folder are for it.')" \\
 && python3 -m venv {APP_DIR}/venv \\
 && {APP_DIR}/venv/bin/python -m pip install --no-index --find-links /tmp/wheels \\
      --no-cache-dir --disable-pip-version-check --requirement {APP_DIR}/requirements.txt \\
 && {APP_DIR}/venv/bin/python -m pip uninstall --yes --quiet pip \\
 && find {APP_DIR}/venv -depth -type d -name tests -prune -exec rm -rf {{}} +
COPY sparkserve {APP_DIR}/lib
RUN {APP_DIR}/venv/bin/python -m compileall -q {APP_DIR}/lib

FROM {spec.base_image}
RUN useradd --system --uid {USER_ID} --user-group --no-create-home \\
      --home-dir /tmp --shell /usr/sbin/nologin sparkserve
COPY --from=environment {APP_DIR} {APP_DIR}
ENV PATH={APP_DIR}/venv/bin:$PATH \\
    PYTHONPATH={APP_DIR}/lib \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    HOME=/tmp \\
    SPARKSERVE_MODEL_DIR={MODEL_DIR}
COPY model {MODEL_DIR}
LABEL {label_lines}
USER {USER_ID}:{USER_ID}
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
  CMD ["python", "-m", "jupyter_sparkserve.containers", "health"]
ENTRYPOINT ["python", "-m", "jupyter_sparkserve.containers"]
CMD ["serve"]
"""


def _wheelhouse(
    pinned: list[str],
    cache: Path,
    log: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> Path:
    """The wheels of `pinned` and their dependencies, for this machine's Python and
    platform: downloaded by this machine's pip (its index settings and certificates) once
    per set of requirements, then reused."""
    key = hashlib.sha256("\n".join([sys.version, *pinned]).encode()).hexdigest()[:16]
    folder = cache / key
    if (folder / ".complete").exists():
        log(f"Reusing the wheels in {folder}")
        return folder
    partial = cache / f".{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    requirement_file = partial / "requirements.txt"
    requirement_file.write_text("\n".join(pinned) + "\n")
    log(f"Downloading the wheels of {len(pinned)} requirements into {folder}")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--dest", str(partial), "--requirement", str(requirement_file),
    ]  # fmt: skip
    stderr = partial / ".pip.log"
    with stderr.open("w") as errors:
        pip = subprocess.Popen(command, stdout=errors, stderr=subprocess.STDOUT)
        while pip.poll() is None:
            if cancel is not None and cancel.wait(0.2):
                pip.kill()
                pip.wait()
                shutil.rmtree(partial, ignore_errors=True)
                raise Cancelled("Cancelled while downloading the wheels.")
            if cancel is None:
                pip.wait()
    if pip.returncode != 0:
        detail = stderr.read_text(errors="replace").strip().splitlines()[-5:]
        shutil.rmtree(partial, ignore_errors=True)
        raise ImageBuildError(
            "pip could not download the image's requirements as wheels for this machine's "
            f"Python: {' '.join(detail)}"
        )
    requirement_file.unlink()
    stderr.unlink()
    (partial / ".complete").write_text("\n".join(pinned) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the file system allows (the wheels are large), copies elsewhere."""
    target.mkdir()
    for item in sorted(source.iterdir()):
        if item.name.startswith("."):
            continue
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_version(key: str) -> str | None:
    for distribution in _INSTALLED_AS.get(key, (key,)):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
