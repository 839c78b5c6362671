"""Ready-to-run code for a model version: what the magics insert as cells and the sidebar
shows. Snippets name no secret: a password in a tracking URI is replaced by a reference to
the environment variable that holds it.

Inserted into someone's notebook, a python snippet keeps out of their way: it assigns one
variable, named after the version (`variable_name`: `iris_1_model`), prints the predictions,
and changes no global state (no `mlflow.set_tracking_uri`). A shell snippet is the command as
a terminal takes it; `cells.cell_source` makes either a notebook cell."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .config import REGISTRY_URI_ENV, TRACKING_URI_ENV, safe_uri
from .deploy.mlflow import Registration
from .repository import ModelVersion


@dataclass(frozen=True)
class Snippet:
    language: str  # "python" or "shell"
    title: str
    code: str

    def to_dict(self) -> dict[str, str]:
        from .cells import cell_source

        # `cell`: the code as a notebook cell runs it (under a comment saying what it does; a
        # shell command as a `%%bash` cell), so no face re-derives how a cell is written.
        return {
            "language": self.language,
            "title": self.title,
            "code": self.code,
            "cell": cell_source(self),
        }


def example_rows(version: ModelVersion, limit: int = 5) -> dict[str, list] | None:
    """The version's saved input example in `dataframe_split` form (columns, data)."""
    if not version.has_input_example:  # a bucket's version is then not fetched for nothing
        return None
    path = version.local_path() / "input_example.json"
    if not path.is_file():
        return None
    example = json.loads(path.read_text())
    if isinstance(example, dict) and "data" in example:
        return {"columns": example.get("columns", []), "data": example["data"][:limit]}
    return None


def variable_name(version: ModelVersion, holds: str) -> str:
    """The one variable a snippet assigns: named after the version and what it holds
    (`iris_1_model`), so that it never overwrites a user's `model`, `data` or `predictions`."""
    name = re.sub(r"\W+", "_", version.name.lower()).strip("_") or "model"
    if name[0].isdigit():
        name = f"model_{name}"
    return f"{name}_{version.version}_{holds}"


def _uri_argument(uri: str, env: str) -> str:
    """A URI as a snippet's argument; one holding a password is read from `env` instead."""
    return f'os.environ["{env}"]' if safe_uri(uri) != uri else repr(uri)


def offline_python(
    version: ModelVersion,
    registration: Registration,
    tracking_uri: str,
    registry_uri: str | None = None,
) -> Snippet:
    """Load the registered `models:/` URI from the MLflow store and score the input example.

    The store's URIs go to a client of its own and to the download: the kernel's MLflow
    tracking URI (a global, `mlflow.set_tracking_uri`) stays what the user set. (A `models:/`
    URI cannot be downloaded from a given registry: MLflow resolves it in the global one.)"""
    rows = example_rows(version)
    model = variable_name(version, "model")
    tracking = _uri_argument(tracking_uri, TRACKING_URI_ENV)
    registry = _uri_argument(registry_uri, REGISTRY_URI_ENV) if registry_uri else tracking
    lines = ["import os", ""] if "os.environ" in tracking + registry else []
    lines += ["import mlflow"]
    if rows is not None:
        lines += ["import pandas as pd"]
    lines += [
        "",
        f"# {registration.model_uri} in sparkserve's MLflow store (named here: MLflow's",
        "# set_tracking_uri would change it for the whole kernel)",
        f"{model} = mlflow.pyfunc.load_model(",
        "    mlflow.artifacts.download_artifacts(",
        f"        mlflow.MlflowClient(tracking_uri={tracking}, registry_uri={registry})",
        f"        .get_model_version_download_uri({registration.mlflow_name!r}, "
        f"{str(registration.mlflow_version)!r}),",
        f"        tracking_uri={tracking},",
        "    )",
        ")",
    ]
    if rows is None:
        lines.append(f"# {model}.predict(frame) scores a DataFrame of the model's input columns")
    else:
        lines += [
            f"print({model}.predict(pd.DataFrame(",
            f"    {rows['data']!r},",
            f"    columns={rows['columns']!r},",
            ")))",
        ]
    return Snippet(
        "python",
        f"Score {version.ref} offline from MLflow ({registration.model_uri})",
        "\n".join(lines),
    )


def example_payload(version: ModelVersion) -> dict[str, Any]:
    """The MLflow scoring request of the version's input example (empty without one)."""
    return {"dataframe_split": example_rows(version) or {"columns": [], "data": []}}


def shell_quoted_json(document: Any) -> str:
    """`document` as JSON inside single quotes, for a shell command."""
    return "'" + json.dumps(document).replace("'", "'\\''") + "'"


def endpoint_python(version: ModelVersion, url: str, token_required: bool) -> Snippet:
    """Score the version's input example against the live endpoint with `requests`."""
    response = variable_name(version, "response")
    lines = ["import requests", ""]
    headers = '{"Content-Type": "application/json"}'
    if token_required:
        lines = ["import os", "", *lines]
        headers = (
            '{\n        "Content-Type": "application/json",\n'
            '        "Authorization": f"Bearer {os.environ[\'SPARKSERVE_ENDPOINT_TOKEN\']}",\n'
            "    }"
        )
    lines += [
        f"{response} = requests.post(",
        f"    {url + '/invocations'!r},",
        f"    json={example_payload(version)!r},",
        f"    headers={headers},",
        "    timeout=60,",
        ")",
        f"{response}.raise_for_status()",
        f'print({response}.json()["predictions"])',
    ]
    return Snippet("python", f"Score {version.ref} at {url}", "\n".join(lines))


def endpoint_curl(version: ModelVersion, url: str, token_required: bool) -> Snippet:
    """The same request with curl (the token, if any, from $SPARKSERVE_ENDPOINT_TOKEN)."""
    body = shell_quoted_json(example_payload(version))
    parts = [
        f"curl -sS -X POST {url}/invocations",
        "-H 'Content-Type: application/json'",
    ]
    if token_required:
        parts.append('-H "Authorization: Bearer $SPARKSERVE_ENDPOINT_TOKEN"')
    parts.append(f"-d {body}")
    return Snippet("shell", f"Score {version.ref} with curl", " \\\n  ".join(parts))
