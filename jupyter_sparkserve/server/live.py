"""What lets every face see the same state: the change counters the sidebar polls, and
clearing the finished jobs from the list."""

from __future__ import annotations

from tornado import web

from ..repository import changes
from ..workflows.cleanup import clear_finished
from .base import SparkserveHandler


class ChangesHandler(SparkserveHandler):
    """One small read per poll: a topic whose counter moved is the only one read again."""

    @web.authenticated
    async def get(self) -> None:
        repository = await self.repository()
        self.reply(await self.run_core(changes.read, repository.engine))


class ClearFinishedJobsHandler(SparkserveHandler):
    @web.authenticated
    async def post(self) -> None:
        runner = await self.run_core(self.services.jobs)
        self.reply({"items": await self.run_core(clear_finished, runner)})
