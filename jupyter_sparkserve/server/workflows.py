"""Score workflows (CRUD), `workflow/execute` with the Sparkflows body, and jobs."""

from __future__ import annotations

from tornado import web

from ..workflows import Workflows, WorkflowSpec, execution_request
from .base import SparkserveHandler
from .bodies import WorkflowRequest, job_spec

MAX_JOBS_LISTED = 1000


class WorkflowsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self) -> None:
        found = await self.run_core(Workflows(await self.repository()).list)
        self.reply({"items": [workflow.to_dict() for workflow in found]})

    @web.authenticated
    async def post(self) -> None:
        request = await self.body(lambda body: WorkflowRequest.parse(body, creating=True))
        workflows = Workflows(await self.repository())
        workflow = await self.run_core(
            workflows.create,
            request.spec,
            name=request.name or "",
            confinement=self.services.confinement,
        )
        self.reply(workflow.to_dict(), 201, f"workflows/{workflow.id}")


class WorkflowHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, workflow_id: str) -> None:
        workflows = Workflows(await self.repository())
        self.reply((await self.run_core(workflows.get, workflow_id)).to_dict())

    @web.authenticated
    async def put(self, workflow_id: str) -> None:
        """Settings given change (null resets one to its default); others stay."""
        request = await self.body(lambda body: WorkflowRequest.parse(body, creating=False))
        workflows = Workflows(await self.repository())
        workflow = await self.run_core(
            workflows.update,
            workflow_id,
            request.spec,
            name=request.name,
            confinement=self.services.confinement,
        )
        self.reply(workflow.to_dict())

    @web.authenticated
    async def delete(self, workflow_id: str) -> None:
        workflows = Workflows(await self.repository())
        self.reply((await self.run_core(workflows.delete, workflow_id)).to_dict())


class ExecuteHandler(SparkserveHandler):
    """The Sparkflows call: `{workflowId, programParameters, sparkConfig, libJars,
    emailOnSuccess, emailOnFailure}` starts a job of the saved workflow."""

    @web.authenticated
    async def post(self) -> None:
        request = await self.body(execution_request)
        runner = await self.run_core(self.services.jobs)
        job = await self.run_core(
            runner.execute, request, confinement=self.services.confinement, by=self.user_name
        )
        self.reply(
            {"jobId": job.id, "status": job.status, "job": job.to_dict()}, 202, f"jobs/{job.id}"
        )


class JobsHandler(SparkserveHandler):
    @web.authenticated
    async def get(self) -> None:
        limit = self.int_argument("limit", 100, minimum=1, maximum=MAX_JOBS_LISTED)
        workflow_id = self.int_argument("workflow_id", None, minimum=1)
        runner = await self.run_core(self.services.jobs)
        found = await self.run_core(
            runner.list,
            status=self.query_argument("status") or None,
            workflow_id=workflow_id,
            limit=limit,
        )
        # Each with where its output is in the server's files, for the sidebar's link.
        contents = self.services.confinement.contents_path
        items = await self.run_core(
            lambda: [{**job.to_dict(), "contents_path": contents(job.output_path)} for job in found]
        )
        self.reply({"items": items})

    @web.authenticated
    async def post(self) -> None:
        """A score run without a saved workflow (the sidebar's Score action)."""
        settings = await self.body(job_spec)
        spec = await self.run_core(WorkflowSpec.from_dict, settings)
        runner = await self.run_core(self.services.jobs)
        job = await self.run_core(
            runner.submit, spec, confinement=self.services.confinement, by=self.user_name
        )
        self.reply(job.to_dict(), 202, f"jobs/{job.id}")


class JobHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        runner = await self.run_core(self.services.jobs)
        self.reply((await self.run_core(runner.get, job_id)).to_dict())


class JobLogHandler(SparkserveHandler):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        tail = self.int_argument("tail", None, minimum=1)
        runner = await self.run_core(self.services.jobs)
        self.reply({"id": job_id, "log": await self.run_core(runner.log, job_id, tail=tail)})


class JobCancelHandler(SparkserveHandler):
    @web.authenticated
    async def post(self, job_id: str) -> None:
        """Waits (off the loop) until the job has stopped, at most the cancel grace period."""
        runner = await self.run_core(self.services.jobs)
        self.reply((await self.run_core(runner.cancel, job_id)).to_dict())
