"""Ready-to-run code for a model version: what the magics insert as cells and the sidebar
shows. Snippets name no secret: a password in a tracking URI is replaced by a reference to
the environment variable that holds it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .config import safe_uri
from .deploy.mlflow import Registration
from .repository import ModelVersion


@dataclass(frozen=True)
class Snippet:
    language: str  # "python" or "shell"
    title: str
    code: str

    def to_dict(self) -> dict[str, str]:
        from .cells import cell_source

        # `cell`: the code as a notebook cell runs it (a shell command behind IPython's `!`,
        # escaped for it), so no face re-derives IPython's quoting rules.
        return {
            "language": self.language,
            "title": self.title,
            "code": self.code,
            "cell": cell_source(self),
        }


def example_rows(version: ModelVersion, limit: int = 5) -> dict[str, list] | None:
    """The version's saved input example in `dataframe_split` form (columns, data)."""
    path = version.path / "input_example.json"
    if not path.is_file():
        return None
    example = json.loads(path.read_text())
    if isinstance(example, dict) and "data" in example:
        return {"columns": example.get("columns", []), "data": example["data"][:limit]}
    return None


def offline_python(version: ModelVersion, registration: Registration, tracking_uri: str) -> Snippet:
    """Load the registered `models:/` URI from the MLflow store and score a DataFrame."""
    rows = example_rows(version)
    imports = ["import mlflow", "import pandas as pd"]
    if safe_uri(tracking_uri) != tracking_uri:  # it holds a password: read it from the env
        imports = ["import os", "", *imports]
        store = 'mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])'
    else:
        store = f"mlflow.set_tracking_uri({tracking_uri!r})"
    if rows is None:
        frame = "data = pd.DataFrame()  # your rows here, with the model's input columns"
    else:
        frame = f"data = pd.DataFrame(\n    {rows['data']!r},\n    columns={rows['columns']!r},\n)"
    code = "\n".join(
        [
            *imports,
            "",
            store,
            f"model = mlflow.pyfunc.load_model({registration.model_uri!r})",
            frame,
            "predictions = model.predict(data)",
            "print(predictions)",
        ]
    )
    return Snippet(
        "python", f"Score {version.ref} offline from MLflow ({registration.model_uri})", code
    )


def example_payload(version: ModelVersion) -> dict[str, Any]:
    """The MLflow scoring request of the version's input example (empty without one)."""
    return {"dataframe_split": example_rows(version) or {"columns": [], "data": []}}


def shell_quoted_json(document: Any) -> str:
    """`document` as JSON inside single quotes, for a shell command."""
    return "'" + json.dumps(document).replace("'", "'\\''") + "'"


def endpoint_python(version: ModelVersion, url: str, token_required: bool) -> Snippet:
    """Score the version's input example against the live endpoint with `requests`."""
    payload = example_payload(version)
    lines = ["import requests", ""]
    headers = '{"Content-Type": "application/json"}'
    if token_required:
        lines = ["import os", "", *lines]
        headers = (
            '{"Content-Type": "application/json",\n'
            '           "Authorization": f"Bearer {os.environ[\'SPARKSERVE_ENDPOINT_TOKEN\']}"}'
        )
    lines += [
        f"payload = {payload!r}",
        "response = requests.post(",
        f"    {url + '/invocations'!r},",
        "    json=payload,",
        f"    headers={headers},",
        "    timeout=60,",
        ")",
        "response.raise_for_status()",
        'print(response.json()["predictions"])',
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
