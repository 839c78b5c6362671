"""The magics in a real kernel (ipykernel through jupyter_client), as a notebook runs them."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from conftest import FAST_SAVE
from jupyter_client.manager import KernelManager, start_new_kernel

from jupyter_sparkserve.cells import CELLS_MIME_TYPE, bang_command
from jupyter_sparkserve.config import ENDPOINT_TOKEN_ENV as TOKEN_ENV
from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.workflows import JobRunner

# Every kernel starts with the extension loaded and the iris features in X.
PRELUDE = (
    "%load_ext jupyter_sparkserve\n"
    "import pandas as pd\n"
    "from sklearn.datasets import load_iris\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
)
TOKEN = "not-a-real-secret"


class Kernel:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.manager: KernelManager
        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd))

    def run(self, code: str, timeout: float = 180) -> dict[str, list]:
        """Run a cell; return its outputs by kind (stream text, results, displays, display
        updates, errors) and the execute reply."""
        outputs: dict[str, list] = {
            "stdout": [],
            "stderr": [],
            "result": [],
            "display": [],
            "update": [],
            "error": [],
            "comm": [],
        }

        def collect(message: dict) -> None:
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                outputs[content["name"]].append(content["text"])
            elif kind == "execute_result":
                outputs["result"].append(content["data"])
            elif kind == "display_data":
                outputs["display"].append(content["data"])
            elif kind == "update_display_data":
                outputs["update"].append(content["data"])
            elif kind == "error":
                outputs["error"].append(content)
            elif kind in ("comm_open", "comm_msg"):
                outputs["comm"].append(content)  # widgets: their state and its updates

        reply = self.client.execute_interactive(code, output_hook=collect, timeout=timeout)
        outputs["reply"] = [reply["content"]]
        return outputs

    def ok(self, code: str) -> dict[str, list]:
        """Run a cell that must succeed."""
        outputs = self.run(code)
        assert outputs["error"] == [], "".join(outputs["stderr"]) + str(outputs["error"])
        return outputs

    def value(self, expression: str) -> Any:
        """The value of a JSON-able expression in the kernel."""
        printed = self.ok(f"import json as _json\nprint(_json.dumps({expression}))")
        return json.loads("".join(printed["stdout"]))

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def bar_finished(outputs: dict[str, list]) -> bool:
    """Whether the cell's progress bar, an output updated in place and never standard error,
    ended at 100%: ipywidgets' bar (installed with the test extras) styled a success, which it
    is only at 1.0 (`magics/output.py`), or the HTML bar's text without ipywidgets."""
    states = [content.get("data", {}).get("state", {}) for content in outputs["comm"]]
    if any(state.get("_model_name") == "FloatProgressModel" for state in states):
        return any(state.get("bar_style") == "success" for state in states)
    shown = outputs["display"] + outputs["update"]
    return bool(shown) and "100% |" in shown[-1]["text/plain"]


def start_kernel(home: Path, cwd: Path) -> Kernel:
    started = Kernel(env={**os.environ, "SPARKSERVE_HOME": str(home)}, cwd=cwd)
    started.ok(PRELUDE)
    return started


@pytest.fixture
def kernel(home: Path, tmp_path: Path) -> Iterator[Kernel]:
    started = start_kernel(home, tmp_path)
    yield started
    started.close()


@pytest.fixture(scope="module")
def misuse_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """One kernel for the misuse cases, with a saved (never registered) model `iris`: none of
    the cases changes anything."""
    folder = tmp_path_factory.mktemp("misuse")
    started = start_kernel(folder / "home", folder)
    started.ok(
        "from sklearn.tree import DecisionTreeClassifier\n"
        "from jupyter_sparkserve.repository import ModelRepository\n"
        "model = DecisionTreeClassifier(max_depth=3).fit(X, y)\n"
        f"ModelRepository().save(model, 'iris', input_example=X.head(3), **{FAST_SAVE!r})\n"
        "not_a_frame = [1, 2, 3]\n"
    )
    yield started
    started.close()


@pytest.fixture
def token_kernel(home: Path, tmp_path: Path) -> Iterator[Kernel]:
    """A kernel with SPARKSERVE_ENDPOINT_TOKEN set: its deployments want that bearer token."""
    started = Kernel(
        env={**os.environ, "SPARKSERVE_HOME": str(home), TOKEN_ENV: TOKEN}, cwd=tmp_path
    )
    started.ok(PRELUDE)
    yield started
    started.close()


@pytest.fixture
def undeploy_at_end(repo: ModelRepository) -> Iterator[Deployments]:
    """Deployments of the test's repository; whatever still runs at the end is stopped."""
    deployments = Deployments(repo)
    yield deployments
    for deployment in deployments.list(active_only=True):
        deployments.undeploy(deployment.id)


def expected_predictions(repo: ModelRepository, ref: str, frame: pd.DataFrame) -> list:
    return repo.load_pyfunc(ref).predict(frame).tolist()


def test_sfsave_then_sfmodels_in_a_kernel(kernel: Kernel) -> None:
    kernel.ok(
        "from sklearn.tree import DecisionTreeClassifier\n"
        "model = DecisionTreeClassifier(max_depth=3).fit(X, y)\n"
    )
    saved = kernel.ok("%sfsave model iris-tree -x X -d 'a small tree' --tag team=risk")
    assert "Saved iris-tree:1 (sklearn)" in "".join(saved["stdout"])

    listed = kernel.ok("%sfmodels --filter tree")
    html = listed["result"][0]["text/html"]
    assert "iris-tree" in html and "sklearn" in html

    # The same SPARKSERVE_HOME: the CLI, the server and the sidebar see it.
    version = ModelRepository(Settings.from_env()).resolve("iris-tree")
    assert version.description == "a small tree"
    assert dict(version.tags) == {"team": "risk"}
    assert version.has_input_example


def test_sfscore_returns_the_repository_models_predictions(
    kernel: Kernel, repo: ModelRepository, iris_saved: str, iris: tuple
) -> None:
    expected = expected_predictions(repo, iris_saved, iris[0])
    scored = kernel.ok("%sfscore iris X -o scored")
    assert "prediction" in scored["result"][0]["text/html"]  # returned: shown as a table
    assert kernel.value("scored['prediction'].tolist()") == expected
    assert kernel.value("list(scored.columns)") == [*iris[0].columns, "prediction"]

    kernel.ok("%sfscore iris X -o kept --keep-columns 'petal width (cm)' --prediction-column p")
    assert kernel.value("list(kept.columns)") == ["petal width (cm)", "p"]

    # A frame over 100k rows gets a progress bar: an output updated in place, never stderr.
    kernel.ok("big = pd.concat([X] * 700, ignore_index=True)")
    big = kernel.ok("%sfscore iris big -o big_scored")
    assert bar_finished(big)
    assert big["stderr"] == []
    # Without ipywidgets, the bar is HTML (`<progress>`) with the text bar as its plain form.
    kernel.ok("import sys\nsys.modules['ipywidgets'] = None")
    plain = kernel.ok("%sfscore iris big -o big_scored")
    kernel.ok("del sys.modules['ipywidgets']")
    assert plain["comm"] == [] and bar_finished(plain) and plain["stderr"] == []
    assert "<progress" in (plain["display"] + plain["update"])[-1]["text/html"]
    assert kernel.value("big_scored['prediction'].tolist()") == expected * 700


def test_sfscore_on_files_runs_a_job_and_sfjobs_lists_it(
    kernel: Kernel, repo: ModelRepository, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.csv"
    done = kernel.ok(f"%sfscore iris {iris_csv} {output.name}")  # relative: the kernel's cwd
    printed = "".join(done["stdout"])
    assert f"Scored 150 rows into {output}" in printed
    assert bar_finished(done) and done["stderr"] == []  # the job's live progress bar
    scored = pd.read_csv(output)
    assert scored["prediction"].tolist() == expected_predictions(
        repo, iris_saved, pd.read_csv(iris_csv)
    )

    (job,) = JobRunner(repo).list()
    assert job.status == "succeeded" and job.id in printed
    listed = kernel.ok("%sfjobs")["result"][0]["text/html"]
    assert job.id in listed and "succeeded" in listed


def test_ctrl_c_cancels_the_scoring_job(
    kernel: Kernel, repo: ModelRepository, iris_saved: str, iris_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "never.csv"
    outcome: dict[str, list] = {}
    cell = threading.Thread(
        target=lambda: outcome.update(kernel.run(f"%sfscore iris {iris_csv} {output}"))
    )
    cell.start()
    runner = JobRunner(repo)
    deadline = time.monotonic() + 60
    while not (jobs := runner.list()) or jobs[0].pid is None:  # submitted and started
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    time.sleep(0.3)  # the magic is following the job now; the job's process is still starting
    kernel.manager.interrupt_kernel()
    cell.join(60)

    (reply,) = outcome["reply"]
    assert reply["ename"] == "UsageError", reply
    assert f"Interrupted: job {jobs[0].id} is cancelled" in "".join(outcome["stderr"])
    assert runner.get(jobs[0].id).status == "cancelled"
    assert not output.exists()


def bundle_of(outputs: dict[str, list]) -> dict[str, Any]:
    (data,) = [data for data in outputs["display"] if CELLS_MIME_TYPE in data]
    return data


def test_sfdeploy_cells_score_at_the_live_endpoint_until_sfundeploy(
    token_kernel: Kernel,
    repo: ModelRepository,
    iris_saved: str,
    iris: tuple,
    undeploy_at_end: Deployments,
) -> None:
    kernel = token_kernel
    example = expected_predictions(repo, iris_saved, iris[0].head(3))  # the snippets' rows
    deployed = kernel.ok("%sfdeploy iris --register")
    (deployment,) = undeploy_at_end.list(active_only=True)
    assert deployment.ref == iris_saved and deployment.status == "running"
    url = deployment.url

    # A status line that ends saying where the endpoint answers, then the endpoint's details.
    assert f"the endpoint answers at {url}" in deployed["update"][-1]["text/plain"]
    (details,) = [data["text/html"] for data in deployed["display"] if "text/html" in data]
    assert url in details and f"%sfundeploy {deployment.id}" in details

    # The cells bundle, as the labextension's renderer reads it.
    data = bundle_of(deployed)
    bundle = data[CELLS_MIME_TYPE]
    assert bundle["version"] == 1 and bundle["id"].startswith(f"{deployment.id}-")
    assert url in bundle["summary"]
    python_cell, curl_cell = bundle["cells"]
    for cell in bundle["cells"]:
        assert cell["cell_type"] == "code"
        assert cell["metadata"]["sparkserve"]["bundle"] == bundle["id"]
    assert "requests.post" in python_cell["source"]
    assert python_cell["source"].startswith(f"# Score {iris_saved} at {url}\n")
    assert curl_cell["source"].startswith(f"%%bash\n# Score {iris_saved} with curl\ncurl ")
    assert python_cell["source"] in data["text/plain"] and "```" in data["text/markdown"]

    # The cells, run in the kernel, score at the live endpoint.
    answer = kernel.ok(python_cell["source"])
    assert json.loads("".join(answer["stdout"])) == example
    assert "$SPARKSERVE_ENDPOINT_TOKEN" in curl_cell["source"]  # the shell's, not IPython's
    answer = kernel.ok(curl_cell["source"])
    assert json.loads("".join(answer["stdout"])) == {"predictions": example}
    with pytest.raises(requests.HTTPError):  # the token is needed indeed
        requests.post(f"{url}/invocations", json={"inputs": []}, timeout=5).raise_for_status()

    # %sfscore through the deployment and through its URL: the same as in-process.
    everything = expected_predictions(repo, iris_saved, iris[0])
    kernel.ok(f"%sfscore iris X -o remote --deployment {deployment.id}")
    assert kernel.value("remote['prediction'].tolist()") == everything
    kernel.ok(f"%sfscore iris:1 X -o remote --endpoint {url}")
    assert kernel.value("remote['prediction'].tolist()") == everything
    no_token = kernel.run(
        f"import os\ndel os.environ['{TOKEN_ENV}']\n%sfscore iris X --endpoint {url}"
    )
    assert no_token["reply"][0]["ename"] == "UsageError"
    assert "wants a bearer token: set SPARKSERVE_ENDPOINT_TOKEN" in "".join(no_token["stderr"])
    kernel.ok(f"os.environ['{TOKEN_ENV}'] = {TOKEN!r}")

    # Emitting again gives a new bundle id; the fallbacks for other front ends.
    again = bundle_of(kernel.ok(f"%sfsnippets {deployment.id}"))[CELLS_MIME_TYPE]
    assert again["id"] != bundle["id"]
    assert [cell["source"] for cell in again["cells"]] == [
        python_cell["source"],
        curl_cell["source"],
    ]
    (payload,) = kernel.ok(f"%sfsnippets {deployment.id} --cells next-input")["reply"][0]["payload"]
    assert payload["source"] == "set_next_input" and not payload["replace"]
    combined = kernel.ok(payload["text"])  # one cell holding both snippets
    assert "".join(combined["stdout"]).count("[") >= 2
    printed = "".join(kernel.ok(f"%sfsnippets {deployment.id} --cells print")["stdout"])
    assert "curl -sS -X POST" in printed and "!curl" not in printed

    already = kernel.run("%sfdeploy iris")
    assert already["reply"][0]["ename"] == "UsageError"
    assert "already deployed" in "".join(already["stderr"])

    stopped = kernel.ok(f"%sfundeploy {deployment.id}")
    assert f"Undeployed {iris_saved} ({deployment.id})" in "".join(stopped["stdout"])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/ping", timeout=5)
    gone = kernel.run(f"%sfscore iris X --deployment {deployment.id}")
    assert gone["reply"][0]["ename"] == "UsageError"
    assert "is stopped, so it has no endpoint" in "".join(gone["stderr"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%sfsave", "the following arguments are required: model, name"),
        ("%sfsave nosuchvar iris", "No variable named 'nosuchvar'"),
        ("%sfsave model 'bad/name'", "letters, digits"),
        ("%sfsave model iris -x nosuchframe", "No variable named 'nosuchframe'"),
        ("%sfsave model iris --tag oops", "KEY=VALUE"),
        ("%sfmodels --limit 0", "limit must be between 1"),
        ("%sfscore", "the following arguments are required: REF, DF_OR_INPUT"),
        ("%sfscore iris nosuchframe", "No variable named 'nosuchframe'"),
        ("%sfscore iris not_a_frame", "'not_a_frame' is not a pandas DataFrame (it holds list)"),
        ("%sfscore nosuchmodel X", "No model named 'nosuchmodel'"),
        ("%sfscore iris X --keep-columns nope", "no column 'nope'"),
        ("%sfscore iris X -o 'not a name'", "-o takes a variable name"),
        ("%sfscore iris X --endpoint http://a --deployment b", "--endpoint URL or --deployment ID"),
        ("%sfscore iris X --deployment nosuchid", "No deployment 'nosuchid'"),
        ("%sfscore iris X --endpoint localhost:1", "is not an endpoint URL"),
        ("%sfscore iris X --endpoint http://127.0.0.1:1", "Nothing answers at"),
        ("%sfscore iris X --engine spark", "--engine applies to scoring files"),
        ("%sfscore iris in.csv out.csv -o x", "-o applies to scoring a DataFrame"),
        ("%sfscore iris in.csv out.csv --engine fast", "invalid choice: 'fast'"),
        ("%sfscore iris in.csv in.csv", "is the input"),
        ("%sfscore iris nosuch.csv out.csv", "does not exist"),  # refused before a job
        ("%sfdeploy", "the following arguments are required: REF"),
        ("%sfdeploy nosuchmodel --register", "No model named 'nosuchmodel'"),
        ("%sfdeploy iris", "Try: %sfdeploy iris:1 --register"),
        ("%sfdeploy iris --target mars", "invalid choice: 'mars'"),
        ("%sfdeploy iris --no-cells --cells print", "--no-cells or --cells MODE, not both"),
        ("%sfdeploy iris --cells sometimes", "invalid choice: 'sometimes'"),
        ("%sfsnippets iris", "register it first"),
        ("%sfundeploy", "the following arguments are required: ID"),
        ("%sfundeploy nosuchid", "No deployment 'nosuchid'"),
        ("%sfjobs --status weird", "Unknown job status 'weird'"),
        ("%sfjobs --limit 0", "--limit must be 1 or more"),
        ("%sfbuild iris --push", "Pushing needs a tag"),
        ("%sfbuild iris --tag Bad:1", "not an image reference"),
        ("%sfk8s iris --autoscale 9-1", "minimum replicas <= maximum replicas"),
        ("%sfk8s iris --namespace Risk", "'namespace' in the Kubernetes settings"),
        ("%sfk8s iris --cells next-input", "invalid choice: 'next-input'"),
    ],
)
def test_misuse_is_a_usage_error_not_a_traceback(
    misuse_kernel: Kernel, line: str, message: str
) -> None:
    outcome = misuse_kernel.run(line)
    # IPython shows a UsageError as a short message on stderr, without a traceback.
    (reply,) = outcome["reply"]
    assert reply["status"] == "error" and reply["ename"] == "UsageError", reply
    shown = "".join(outcome["stderr"])
    assert shown.lstrip("\r").startswith("UsageError:") or "\nUsageError:" in shown, shown
    assert message in shown and "Traceback" not in shown


@pytest.mark.parametrize("token_required", [False, True])
def test_curl_cells_reach_the_shell_as_written(
    repo: ModelRepository, iris_saved: str, token_required: bool
) -> None:
    """What IPython's `!` does to a command of a combined cell (its DollarFormatter) gives
    back the snippet exactly: JSON braces, the token variable, and dollars in odd places."""
    from IPython.utils.text import DollarFormatter

    from jupyter_sparkserve.snippets import endpoint_curl

    snippet = endpoint_curl(repo.resolve(iris_saved), "http://127.0.0.1:1", token_required)
    odd = "echo \"$HOME\" '$HOME' {x} $$ $ $1 ${A} '{\"a\": \"$B\"}' $C.d \"it''s\" '{' $Z '}'"
    for command in (snippet.code, odd):
        assert DollarFormatter().vformat(bang_command(command), [], {}) == command
