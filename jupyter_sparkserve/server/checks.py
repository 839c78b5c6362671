"""Checks: would a deploy or a score job be accepted, may the Kubernetes dialog save its
manifests at a path? The same core checks as the real calls, with nothing recorded, started
or written, so a dialog can say what is wrong next to the field (an error's `field`) and stay
open."""

from __future__ import annotations

from tornado import web

from ..containers.kubernetes import MANIFEST_SUFFIXES
from ..deploy.deployments import Deployments
from ..deploy.targets import with_defaults
from ..workflows import WorkflowSpec
from ..workflows.preflight import check_score
from .base import SparkserveHandler
from .bodies import DeployRequest, checked, job_spec

ACCEPTED = {"ok": True}


class DeployCheckHandler(SparkserveHandler):
    @web.authenticated
    async def post(self) -> None:
        """200 when `POST deployments` would start this deploy; else its error."""
        request = await self.body(DeployRequest.parse)
        service = Deployments(await self.repository())
        options = with_defaults(request.target, request.options, self.services.deploy_defaults)
        await self.run_core(
            service.check, request.ref, request.target, options, register=request.register
        )
        self.reply(ACCEPTED)


class ScoreCheckHandler(SparkserveHandler):
    @web.authenticated
    async def post(self) -> None:
        """200 when `POST jobs` would start this score job and its run would plan; else the
        error either gives."""
        settings = await self.body(job_spec)
        spec = await self.run_core(WorkflowSpec.from_dict, settings)
        repository = await self.repository()
        await self.run_core(
            check_score, spec, repository=repository, confinement=self.services.confinement
        )
        self.reply(ACCEPTED)


class ManifestFileCheckHandler(SparkserveHandler):
    @web.authenticated
    async def post(self) -> None:
        """200 with the contents path when the manifests may be saved at `path`; else why not
        (409 FILE_EXISTS: it exists, and `overwrite` was not given)."""
        request = await self.body(lambda body: checked("ManifestFileCheck", body))
        path = await self.run_core(
            self.services.confinement.file_to_write,
            request["path"],
            "path",
            suffixes=MANIFEST_SUFFIXES,
            overwrite=request.get("overwrite", False),
        )
        self.reply({"ok": True, "path": path})
