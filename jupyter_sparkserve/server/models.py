"""Models and versions: list, show, import, delete, alias, register, score, snippets, build
an image, Kubernetes manifests."""

from __future__ import annotations

import json
from typing import Any

from tornado import web

from .. import shapes
from ..containers.build_job import BuildSpec
from ..containers.images import kubernetes_manifest
from ..containers.kubernetes import KubernetesOptions
from ..deploy.mlflow import MlflowRegistry
from ..errors import InvalidInput
from ..lifecycle import version_snippets
from ..scoring.offline import score_dataframe
from . import views
from .base import SparkserveHandler, SparkserveHTTPError
from .bodies import MAX_SCORE_BYTES, ImportRequest, ScoreRequest, alias_version, checked


def version_ref(name: str, version: str) -> str:
    """`NAME:VERSION` from the path; only a number names a version there."""
    number = shapes.whole_number(version)
    if number is None or number < 1:
        raise SparkserveHTTPError(
            InvalidInput(f"A version in the path is a number such as 1, got {version!r}.")
        )
    return f"{name}:{number}"


class ModelsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self) -> None:
        limit = self.int_argument("limit", 50)
        offset = self.int_argument("offset", 0)
        repository = await self.repository()
        page = await self.run_core(
            repository.list_models,
            name_contains=self.query_argument("name_contains"),
            tag=self.query_argument("tag"),
            limit=limit,
            offset=offset,
        )
        self.reply(await self.run_core(views.models_page, repository, page))

    @web.authenticated
    async def post(self) -> None:
        request = await self.body(ImportRequest.parse)
        repository = await self.repository()
        version = await self.run_core(
            repository.import_model,
            request.source,
            request.name,
            description=request.description,
            tags=request.tags,
            metrics=request.metrics,
            allowed_source=self.services.confinement.model_source,
            by=self.user_name,
        )
        self.reply(
            await self.run_core(views.version, repository, version),
            201,
            f"models/{version.name}/versions/{version.version}",
        )


class ModelHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        repository = await self.repository()
        details = await self.run_core(repository.get_model, name)
        self.reply(await self.run_core(views.model, repository, details))

    @web.authenticated
    async def delete(self, name: str) -> None:
        repository = await self.repository()
        self.reply(views.deleted_model(await self.run_core(repository.delete_model, name)))


class VersionHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        repository = await self.repository()
        found = await self.run_core(repository.resolve, ref)
        self.reply(await self.run_core(views.version, repository, found))

    @web.authenticated
    async def delete(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        repository = await self.repository()
        self.reply(views.deleted_version(await self.run_core(repository.delete_version, ref)))


class AliasHandler(SparkserveHandler):
    @web.authenticated
    async def put(self, name: str, alias: str) -> None:
        number = await self.body(alias_version)
        repository = await self.repository()
        found = await self.run_core(repository.set_alias, f"{name}:{number}", alias)
        self.reply(await self.run_core(views.version, repository, found))

    @web.authenticated
    async def delete(self, name: str, alias: str) -> None:
        repository = await self.repository()
        await self.run_core(repository.remove_alias, name, alias)
        self.no_content()


class RegisterHandler(SparkserveHandler):
    again = False  # Re-register: a new MLflow version of a registered one

    @web.authenticated
    async def post(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        repository = await self.repository()
        registry = MlflowRegistry(repository)
        register = registry.reregister if self.again else registry.register
        registration = await self.run_core(register, ref)
        found = await self.run_core(repository.resolve, ref)
        self.reply(
            {
                "registration": registration.to_dict(),
                "version": await self.run_core(views.version, repository, found),
            },
            201,
        )


class ReregisterHandler(RegisterHandler):
    again = True


class ScoreHandler(SparkserveHandler):
    """A few rows scored in this process, for the sidebar's "try it" form."""

    @web.authenticated
    async def post(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        request = await self.body(ScoreRequest.parse, max_bytes=MAX_SCORE_BYTES)
        repository = await self.repository()
        scored = await self.run_core(
            score_dataframe,
            ref,
            request.frame,
            keep_columns=request.keep_columns,
            prediction_column=request.prediction_column,
            repository=repository,
        )
        # pandas writes numpy values, NaN (as null) and dates as JSON
        table: dict[str, Any] = json.loads(scored.to_json(orient="split", index=False))
        self.reply({"ref": ref, "rows": len(scored), **table})


class VersionSnippetsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        repository = await self.repository()
        found = await self.run_core(version_snippets, repository, ref)
        self.reply(found.to_dict())


class BuildImageHandler(SparkserveHandler):
    """The version's image, built as a job (the sidebar's "Build image…")."""

    @web.authenticated
    async def post(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        settings = await self.body(lambda body: checked("ImageBuildRequest", body))
        spec = await self.run_core(BuildSpec.from_dict, {**settings, "model": ref})
        runner = await self.run_core(self.services.jobs)
        job = await self.run_core(runner.submit, spec, by=self.user_name)
        self.reply(job.to_dict(), 202, f"jobs/{job.id}")


class KubernetesHandler(SparkserveHandler):
    """Manifests serving the version from an image (the sidebar's "Kubernetes manifest…")."""

    @web.authenticated
    async def post(self, name: str, version: str) -> None:
        ref = version_ref(name, version)
        options = await self.body(KubernetesOptions.from_settings)
        repository = await self.repository()
        manifest = await self.run_core(kubernetes_manifest, repository, ref, options)
        self.reply(manifest.to_dict())
