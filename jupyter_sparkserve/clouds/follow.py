"""A cloud's batch job followed to its end, for every cloud batch engine: its state is asked
with a growing pause, Cancel asks the cloud once to stop it (and waits for it to say so), and
how it ended becomes the run's outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Cancelled, SparkserveError
from ..scoring.batch import BatchProgress, ProgressCallback

STOP_WAIT_SECONDS = 600  # after this, a job asked to stop counts as cancelled anyway
LONGEST_PAUSE_SECONDS = 10.0


@dataclass(frozen=True)
class JobState:
    ended: bool
    succeeded: bool = False
    stopped: bool = False  # it ended because it was stopped
    failure: str = ""  # why it failed, in the cloud's words


def follow(
    state: Callable[[], JobState],
    stop: Callable[[], None],
    what: str,
    *,
    failed: type[SparkserveError],
    cancel: threading.Event,
    progress: ProgressCallback | None,
) -> None:
    """Return once the job `what` ("the transform job NAME") has succeeded; raise `failed`
    with the cloud's reason, or Cancelled once it is stopped."""
    pause = 0.5
    stopping_since: float | None = None
    while True:
        now = state()
        if now.succeeded:
            return
        if now.stopped:
            raise Cancelled(f"Cancelled: {what} is stopped.")
        if now.ended:
            raise failed(f"{what[:1].upper()}{what[1:]} failed: {now.failure}")
        if cancel.is_set() and stopping_since is None:
            stop()
            stopping_since = time.monotonic()
        if stopping_since is not None and time.monotonic() - stopping_since > STOP_WAIT_SECONDS:
            raise Cancelled(f"Cancelled: {what} was asked to stop.")
        if progress is not None:
            progress(BatchProgress(0, None, 0, 0, 0, 1))
        if stopping_since is None:
            cancel.wait(pause)  # a cancel wakes it at once
        else:
            time.sleep(1.0)
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
