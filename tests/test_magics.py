"""The magics in a real kernel (ipykernel through jupyter_client), as a notebook runs them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager, start_new_kernel

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.repository import ModelRepository


class Kernel:
    def __init__(self, env: dict[str, str]) -> None:
        self.manager: KernelManager
        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env)

    def run(self, code: str) -> dict[str, list]:
        """Run a cell; return its outputs by kind (stream text, results, errors) and the
        execute reply."""
        outputs: dict[str, list] = {"stdout": [], "stderr": [], "result": [], "error": []}

        def collect(message: dict) -> None:
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                outputs[content["name"]].append(content["text"])
            elif kind == "execute_result":
                outputs["result"].append(content["data"])
            elif kind == "error":
                outputs["error"].append(content)

        reply = self.client.execute_interactive(code, output_hook=collect, timeout=180)
        outputs["reply"] = [reply["content"]]
        return outputs

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(home: Path) -> Iterator[Kernel]:
    started = Kernel(env={**os.environ, "SPARKSERVE_HOME": str(home)})
    yield started
    started.close()


@pytest.fixture(scope="module")
def misuse_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """One kernel for the misuse cases: none of them changes anything."""
    home = tmp_path_factory.mktemp("misuse") / "home"
    started = Kernel(env={**os.environ, "SPARKSERVE_HOME": str(home)})
    started.run("%load_ext jupyter_sparkserve\nmodel = object()")
    yield started
    started.close()


def test_sfsave_then_sfmodels_in_a_kernel(kernel: Kernel, home: Path) -> None:
    setup = kernel.run(
        "%load_ext jupyter_sparkserve\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "X, y = load_iris(return_X_y=True, as_frame=True)\n"
        "model = DecisionTreeClassifier(max_depth=3).fit(X, y)\n"
    )
    assert setup["error"] == []
    saved = kernel.run("%sfsave model iris-tree -x X -d 'a small tree' --tag team=risk")
    assert saved["error"] == [], saved["error"]
    assert "Saved iris-tree:1 (sklearn)" in "".join(saved["stdout"])

    listed = kernel.run("%sfmodels --filter tree")
    assert listed["error"] == []
    html = listed["result"][0]["text/html"]
    assert "iris-tree" in html and "sklearn" in html

    # The same SPARKSERVE_HOME: the CLI, the server and the sidebar see it.
    version = ModelRepository(Settings.from_env()).resolve("iris-tree")
    assert version.description == "a small tree"
    assert dict(version.tags) == {"team": "risk"}
    assert version.has_input_example


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%sfsave", "the following arguments are required: model, name"),
        ("%sfsave nosuchvar iris", "No variable named 'nosuchvar'"),
        ("%sfsave model 'bad/name'", "letters, digits"),
        ("%sfsave model iris -x nosuchframe", "No variable named 'nosuchframe'"),
        ("%sfsave model iris --tag oops", "KEY=VALUE"),
        ("%sfmodels --limit 0", "limit must be between 1"),
    ],
)
def test_misuse_is_a_usage_error_not_a_traceback(
    misuse_kernel: Kernel, line: str, message: str
) -> None:
    outcome = misuse_kernel.run(line)
    # IPython shows a UsageError as a short message on stderr, without a traceback.
    (reply,) = outcome["reply"]
    assert reply["status"] == "error" and reply["ename"] == "UsageError"
    shown = "".join(outcome["stderr"])
    assert shown.startswith("UsageError:") and message in shown
    assert "Traceback" not in shown
