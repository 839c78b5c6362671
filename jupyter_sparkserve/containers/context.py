"""The build context of a model version's image: a Dockerfile, pinned requirements, their
installed environment, sparkserve's own code and the model folder.

Requirements are resolved on this machine at build time: the model's own (MLflow's
requirements.txt, `mlflow` swapped for `mlflow-skinny`, which is all pyfunc serving needs)
plus what the endpoint and the batch scorer import, each pinned to the version installed
here (what the model was trained and tested with). The web server's own packages, which no
prediction depends on, may be older than here (at least what sparkserve declares): a version
released minutes ago, or installed from elsewhere, is often not yet on the index as a wheel,
and the image then takes the newest one that is. uv installs their wheels from where this
machine's pip gets them into a folder, compiled to bytecode and archived, once per set of
requirements; the archive is cached, and the image unpacks it in one layer. So the image
builds without network access and with no install step, and the container installs nothing
when it starts. The Dockerfile puts the environment before the model: a new version of the
same model reuses every layer but the last.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__, shapes
from ..config import BASE_IMAGE_ENV
from ..errors import InvalidInput
from . import environment
from .layout import APP_DIR, MODEL_DIR, PORT, USER_ID

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
# Serving packages no prediction depends on: pinned at most to the version installed here.
_PLUMBING = frozenset({"orjson", "uvicorn", "uvloop", "httptools", "pyyaml"})
# Packages whose distribution is named differently from what is installed here.
_INSTALLED_AS = {"mlflow-skinny": ("mlflow-skinny", "mlflow")}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
# Left out of the copy of sparkserve's code: the JupyterLab bundle and bytecode.
_NOT_COPIED = shutil.ignore_patterns("labextension", "__pycache__", "*.pyc")
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
SITE_PACKAGES = f"{APP_DIR}/venv/lib/python{PYTHON}/site-packages"


@dataclass(frozen=True)
class ImageSpec:
    """What one image holds and is called."""

    ref: str  # NAME:VERSION
    model_dir: Path
    tag: str
    base_image: str = DEFAULT_BASE_IMAGE
    labels: Mapping[str, str] = field(default_factory=dict)  # more OCI labels (model URI, ...)


def base_image(given: str | None = None) -> str:
    return given or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE


def image_tag(name: str, version: int) -> str:
    """The default tag: `sparkserve/NAME:VERSION`, NAME lower-cased with any run of
    separators an image name cannot hold (`a_-b`, `a___b`, a trailing `-`) made one `-`."""
    cleaned = re.sub(r"[._-]{2,}", lambda run: "__" if run[0] == "__" else "-", name.lower())
    return f"sparkserve/{cleaned.strip('._-') or 'model'}:{version}"


def check_image_reference(value: str, field: str, *, digest: bool = False, name: str = "") -> str:
    """`value` when it is an image reference as openapi.yaml's ImageReference states it (with
    a digest only where `digest` allows one); `name`: the request field it came from."""
    value = value.strip()
    rule = shapes.schema("ImageReference")["pattern"]
    if not re.fullmatch(rule, value) or (not digest and "@" in value):
        raise InvalidInput(
            f"{field} {value!r} is not an image reference: write [REGISTRY/]NAME[:TAG] with a "
            "lower-case NAME, such as 127.0.0.1:5000/models/churn:3"
            + (", or NAME@sha256:DIGEST." if digest else "."),
            field=name,
        )
    return value


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
        if pinned and key in _PLUMBING and key not in wanted:
            requirement = f"{name}{extras}{_at_most(key, pinned)}"
        else:
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
    environment_cache: Path,
    log: Callable[[str], None] = lambda _line: None,
    cancel: threading.Event | None = None,
) -> Path:
    """Write the build context into `directory` (created, must be empty); the Dockerfile's
    path. The environment comes from `environment_cache`, installed there first when missing
    (stopped by `cancel`)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise InvalidInput(f"{directory} is not empty: give a new or empty folder.")
    pinned = requirements(spec.model_dir)
    (directory / "requirements.txt").write_text("\n".join(pinned) + "\n")
    archive = environment.prepare(
        pinned, environment_cache, site_packages=SITE_PACKAGES, log=log, cancel=cancel
    )
    environment.link_or_copy(archive, directory / environment.ARCHIVE)
    package = Path(__file__).resolve().parent.parent
    shutil.copytree(package, directory / "sparkserve" / package.name, ignore=_NOT_COPIED)
    environment.compile_tree(directory / "sparkserve", f"{APP_DIR}/lib")
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
    python = PYTHON
    version_tuple = python.replace(".", ", ")
    return f"""\
# Generated by jupyter_sparkserve {__version__} for model {spec.ref}.
# Build it again with `docker build -t {spec.tag} .` in this folder (or podman build).
#
# The environment in ./site-packages.tar was installed and compiled when this was written
# (no network needed here) and the container installs nothing when it starts. It comes
# before the model, so a new version of the same model reuses every layer but the model's.
#   docker run -p 127.0.0.1:8080:8080 {spec.tag}                   # serve (MLflow's protocol)
#   docker run -v $PWD:/data {spec.tag} score /data/in.csv /data/out.csv   # batch scoring

FROM {spec.base_image}
RUN python3 -c "import sys; sys.exit(0 if sys.version_info[:2] == ({version_tuple}) else \\
      'The base image needs Python {python}: the environment in this folder is for it.')" \\
 && python3 -m venv --without-pip {APP_DIR}/venv \\
 && useradd --system --uid {USER_ID} --user-group --no-create-home \\
      --home-dir /tmp --shell /usr/sbin/nologin sparkserve
ADD {environment.ARCHIVE} {SITE_PACKAGES}/
COPY sparkserve {APP_DIR}/lib
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


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _at_most(key: str, installed: str) -> str:
    """`<=installed`, with the lower bound sparkserve's own dependencies declare for `key`."""
    from packaging.requirements import Requirement

    for line in importlib.metadata.requires("jupyter_sparkserve") or []:
        declared = Requirement(line)
        if _canonical(declared.name) == key and "extra" not in str(declared.marker or ""):
            lower = [str(s) for s in declared.specifier if s.operator == ">="]
            return ",".join([*lower, f"<={installed}"])
    return f"<={installed}"


def _installed_version(key: str) -> str | None:
    for distribution in _INSTALLED_AS.get(key, (key,)):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
