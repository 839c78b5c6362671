"""Images of repository versions: what `sparkserve build`, the magics and the container
target call."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import ImageSpec, base_image, image_tag, write_context
from .engine import BuiltImage, build_image
from .environment import cache_folder as environment_cache
from .kubernetes import KubernetesOptions, manifests, resource_name, to_yaml

if TYPE_CHECKING:
    from ..repository import ModelRepository
    from ..snippets import Snippet


@dataclass(frozen=True)
class FolderImage:
    tag: str  # sparkserve/batch:KEY on the engine
    key: str  # the folder's key: names what a cloud makes for this image


def folder_key(model_path: Path) -> str:
    """A model folder's key, from its path: its image's tag and what clouds make for it."""
    return hashlib.sha256(str(Path(model_path).resolve()).encode()).hexdigest()[:16]


def model_folder_image(model_path: Path) -> FolderImage:
    """The image of a model folder (what a batch engine is given, not a version), tagged by
    the folder's path; every layer but the model's is cached from earlier builds."""
    key = folder_key(model_path)
    spec = ImageSpec(f"batch:{key}", Path(model_path), f"sparkserve/batch:{key}", base_image())
    return FolderImage(build_image(spec, environment_cache=environment_cache()).tag, key)


def version_spec(
    repository: ModelRepository,
    ref: str,
    *,
    tag: str | None = None,
    base: str | None = None,
) -> ImageSpec:
    version = repository.resolve(ref)
    labels = {"io.sparkserve.model.source": version.source}
    return ImageSpec(
        ref=version.ref,
        model_dir=version.local_path(),
        tag=tag or image_tag(version.name, version.version),
        base_image=base_image(base),
        labels=labels,
    )


def build_version_image(
    repository: ModelRepository,
    ref: str,
    *,
    tag: str | None = None,
    base: str | None = None,
    context_dir: Path | None = None,
    log: Callable[[str], None] = lambda _line: None,
    cancel: threading.Event | None = None,
) -> BuiltImage:
    spec = version_spec(repository, ref, tag=tag, base=base)
    return build_image(
        spec, environment_cache=environment_cache(), context_dir=context_dir, log=log, cancel=cancel
    )


def write_version_context(
    repository: ModelRepository,
    ref: str,
    directory: Path,
    *,
    tag: str | None = None,
    base: str | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> Path:
    """The build context alone (`--dockerfile-only`): the Dockerfile's path."""
    spec = version_spec(repository, ref, tag=tag, base=base)
    return write_context(spec, directory, environment_cache=environment_cache(), log=log)


@dataclass(frozen=True)
class KubernetesManifest:
    """A version's manifests as YAML, the file name to keep them in, and the notebook cells
    that write that file and apply it."""

    ref: str
    yaml: str
    filename: str

    @property
    def summary(self) -> str:
        return f"Kubernetes manifests serving {self.ref}."

    def snippets(self) -> list[Snippet]:
        from ..snippets import Snippet

        return [
            Snippet(
                "python", f"Write {self.filename}", f"%%writefile {self.filename}\n{self.yaml}"
            ),
            Snippet("shell", "Apply it to the cluster", f"kubectl apply -f {self.filename}"),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "yaml": self.yaml,
            "filename": self.filename,
            "snippets": [snippet.to_dict() for snippet in self.snippets()],
            "summary": self.summary,
        }


def kubernetes_manifest(
    repository: ModelRepository, ref: str, options: KubernetesOptions
) -> KubernetesManifest:
    """The version's Deployment, Service (and autoscaler, disruption budget) as YAML; the
    image is the version's default tag unless the options name one."""
    version = repository.resolve(ref)
    if not options.image:
        options = dataclasses.replace(options, image=image_tag(version.name, version.version))
    documents = manifests(version.name, version.version, options)
    filename = f"{resource_name(version.name, version.version)}.yaml"
    # The file says what it is, first: so does the %%writefile cell that writes it, whose
    # first line must be the magic.
    kinds = ", ".join(document["kind"] for document in documents)
    heading = f"# {filename}: Kubernetes manifests serving {version.ref} ({kinds})\n"
    return KubernetesManifest(version.ref, heading + to_yaml(documents), filename)
