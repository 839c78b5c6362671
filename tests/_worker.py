"""Repository work done in a separate process, for the cross-process tests.

python tests/_worker.py import SOURCE NAME COUNT GO_FILE
    says "ready", waits for GO_FILE so that all workers start together, then prints
    each version it got
python tests/_worker.py save-forever MARKER        a save that never finishes writing
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import mlflow.pyfunc

from jupyter_sparkserve.repository import ModelRepository


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


def main(action: str, *args: str) -> None:
    repository = ModelRepository()
    if action == "import":
        source, name, count, go_file = args
        print("ready", flush=True)
        while not Path(go_file).exists():
            time.sleep(0.005)
        for _ in range(int(count)):
            print(repository.import_model(source, name).version, flush=True)
    elif action == "save-forever":
        (marker,) = args
        repository.save(NeverFinishesWriting(marker), "crashy", pip_requirements=["pandas"])
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(*sys.argv[1:])
