"""Deployments: create (answered at once, started in the background), list, show, undeploy,
dismiss, snippets, live metrics."""

from __future__ import annotations

from tornado import web

from ..deploy.deployments import Deployments
from ..deploy.targets import with_defaults
from ..lifecycle import deployment_snippets
from ..monitor import Monitor, MonitorPool, source_for
from .base import SparkserveHandler
from .bodies import DeployRequest


class DeploymentsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self) -> None:
        everything = self.bool_argument("all")  # stopped and failed ones too
        failed = self.bool_argument("attention")  # and the failed ones not dismissed
        service = Deployments(await self.repository())
        found = await self.run_core(
            service.list,
            active_only=not (everything or failed),
            attention=failed and not everything,
        )
        self.reply({"items": [deployment.to_dict() for deployment in found]})

    @web.authenticated
    async def post(self) -> None:
        """202 with the deployment `starting`: fetching the model and waiting for the endpoint
        takes seconds, so that runs after the answer; GET deployments/{id} follows it."""
        request = await self.body(DeployRequest.parse)
        service = Deployments(await self.repository())
        options = with_defaults(request.target, request.options, self.services.deploy_defaults)
        deployment = await self.run_core(
            service.begin,
            request.ref,
            request.target,
            options,
            register=request.register,
            by=self.user_name,
        )

        def launch() -> None:
            service.launch(deployment.id, options)

        self.services.in_background(f"Deploying {deployment.ref} ({deployment.id})", launch)
        self.reply(deployment.to_dict(), 202, f"deployments/{deployment.id}")


class DeploymentHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, deployment_id: str) -> None:
        service = Deployments(await self.repository())
        self.reply((await self.run_core(service.get, deployment_id)).to_dict())

    @web.authenticated
    async def delete(self, deployment_id: str) -> None:
        """Undeploy: stop the endpoint; the record stays, `stopped`."""
        service = Deployments(await self.repository())
        self.reply((await self.run_core(service.undeploy, deployment_id)).to_dict())


class DeploymentDismissHandler(SparkserveHandler):
    @web.authenticated
    async def post(self, deployment_id: str) -> None:
        """Forget an ended deployment's record; the deployment as it was."""
        service = Deployments(await self.repository())
        self.reply((await self.run_core(service.dismiss, deployment_id)).to_dict())


class DeploymentSnippetsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, deployment_id: str) -> None:
        found = await self.run_core(deployment_snippets, await self.repository(), deployment_id)
        self.reply(found.to_dict())


# One pool for the server process: a deployment's monitor lives while someone reads it.
MONITORS = MonitorPool()


class DeploymentMetricsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, deployment_id: str) -> None:
        """The endpoint's figures over the window, read with the server's token."""
        window = self.int_argument("window", 5, minimum=1, maximum=60) or 5
        repository = await self.repository()

        def read() -> dict:
            def make() -> Monitor:
                return Monitor(source_for(repository, deployment_id), window * 60.0)

            figures = MONITORS.read(deployment_id, make, window_seconds=window * 60.0)
            return {"deployment_id": deployment_id, "figures": figures.to_dict()}

        self.reply(await self.run_core(read))
