"""Adaptive micro-batching: concurrent requests share one `predict` call.

Requests queue up while the model is busy; when it is free, everything waiting (up to
`max_batch_rows` rows) goes in the next call. An idle server therefore adds no delay to a lone
request, and a loaded one batches as much as the load provides. `max_wait_ms` lets a batch
that started under load wait briefly for more company. Predictions run on one worker thread,
so the event loop keeps reading requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .protocol import ScoringInput
from .scorer import Outcome, Scorer


class MicroBatcher:
    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch_rows: int = 256,
        max_wait_ms: float = 1.0,
        on_batch: Callable[[int, int], None] = lambda _requests, _rows: None,
    ) -> None:
        self.scorer = scorer
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: deque[tuple[ScoringInput, asyncio.Future[Outcome]]] = deque()
        self._ready = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparkserve-predict")
        self._task: asyncio.Task[None] | None = None
        self._loaded = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: ScoringInput) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._ready.set()
        return await future

    def _take(self) -> list[tuple[ScoringInput, asyncio.Future[Outcome]]]:
        batch, rows = [], 0
        while self._queue:
            item, future = self._queue[0]
            if batch and rows + item.n_rows > self.max_batch_rows:
                break
            self._queue.popleft()
            if future.cancelled():  # its client timed out or went away
                continue
            batch.append((item, future))
            rows += item.n_rows
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
            batch = self._take()
            if self._loaded and self.max_wait and len(batch) < 2 and self._queue == deque():
                # Under load a little patience fills the batch; idle, nobody waits.
                await asyncio.sleep(self.max_wait)
                batch += self._take()
            if not batch:
                continue
            items = [item for item, _ in batch]
            self.on_batch(len(items), sum(item.n_rows for item in items))
            try:
                outcomes = await loop.run_in_executor(self._executor, self.scorer.score, items)
            except Exception as error:  # a bug, not a bad request: fail this batch only
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._loaded = len(batch) > 1 or bool(self._queue)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
