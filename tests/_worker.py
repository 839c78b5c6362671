"""Repository work done in a separate process, for the cross-process tests.

python tests/_worker.py save NAME COUNT GO_FILE
    trains a small scikit-learn model, says "ready", waits for GO_FILE so that all workers
    start together, then saves it COUNT times and prints each version it got
python tests/_worker.py save-forever MARKER        a save that never finishes writing

With SPARKSERVE_WORKER_STALL_AFTER_PROMOTE=MARKER in the environment, a save renames its
folder into place (on a bucket: uploads its files to their final keys), writes MARKER and then
hangs before the database commit, for a test to kill it exactly there. The hook lives here
only: the package has no test hooks.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import mlflow.pyfunc

from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.repository.artifacts import LocalArtifactStore

STALL_AFTER_PROMOTE = "SPARKSERVE_WORKER_STALL_AFTER_PROMOTE"
# Pinned requirements: inferring them loads the model in a subprocess, which is what is slow.
FAST_SAVE = {"pip_requirements": ["scikit-learn", "pandas"]}


class NeverFinishesWriting(mlflow.pyfunc.PythonModel):
    """Its serialisation starts and then hangs, as a save does when the process is killed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __getstate__(self) -> dict[str, str]:
        Path(self.marker).write_text("writing")
        time.sleep(600)
        return {"marker": self.marker}

    def predict(self, context, model_input, params=None):
        return model_input


def _stall_after_promote(marker: str) -> None:
    """Make the store's promote hang once the folder is in place (on a bucket: uploaded):
    `_add_version` calls it as the last step inside its write transaction, so the row is not
    committed yet. Only the store this repository uses (a bucket's cache is a local store)."""
    store: type = LocalArtifactStore
    if (os.environ.get("SPARKSERVE_ARTIFACT_ROOT") or "").startswith("s3://"):
        from jupyter_sparkserve.repository.s3_artifacts import S3ArtifactStore

        store = S3ArtifactStore
    promote = store.promote

    def promote_then_hang(self, source: Path, relative: str) -> Path:
        target = promote(self, source, relative)
        Path(marker).write_text(relative)
        time.sleep(600)
        return target

    store.promote = promote_then_hang  # type: ignore[method-assign]


def _small_model():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    return LogisticRegression(max_iter=500).fit(features, target)


def _wait_for(go_file: str) -> None:
    print("ready", flush=True)
    while not Path(go_file).exists():
        time.sleep(0.005)


def main(action: str, *args: str) -> None:
    if os.environ.get(STALL_AFTER_PROMOTE):
        _stall_after_promote(os.environ[STALL_AFTER_PROMOTE])
    repository = ModelRepository()
    if action == "save":
        name, count, go_file = args
        model = _small_model()
        _wait_for(go_file)
        for _ in range(int(count)):
            print(repository.save(model, name, **FAST_SAVE).version, flush=True)
    elif action == "save-forever":
        (marker,) = args
        repository.save(NeverFinishesWriting(marker), "crashy", pip_requirements=["pandas"])
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(*sys.argv[1:])
