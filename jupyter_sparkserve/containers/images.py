"""Images of repository versions: what `sparkserve build`, the magics and the container
target call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .context import ImageSpec, base_image, image_tag, wheel_cache, write_context
from .engine import BuiltImage, build_image
from .kubernetes import KubernetesOptions, manifests, to_yaml

if TYPE_CHECKING:
    from ..repository import ModelRepository


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
        model_dir=version.path,
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
) -> BuiltImage:
    spec = version_spec(repository, ref, tag=tag, base=base)
    return build_image(spec, wheel_cache=wheel_cache(), context_dir=context_dir, log=log)


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
    return write_context(spec, directory, wheel_cache=wheel_cache(), log=log)


def kubernetes_yaml(repository: ModelRepository, ref: str, options: KubernetesOptions) -> str:
    """The version's Deployment, Service (and autoscaler, disruption budget) as YAML."""
    version = repository.resolve(ref)
    return to_yaml(manifests(version.name, version.version, options))
