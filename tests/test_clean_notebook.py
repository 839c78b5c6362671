"""Notebooks stay clean (issue 15, section 3), in real kernels: inserted cells leave the user's
variables and MLflow's tracking URI alone, save, register and deploy write nothing to the
cell's standard error, empty lists say so, and a score run with a missing file or column is
refused before a job is made."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_magics import Kernel, bundle_of, expected_predictions
from test_magics import kernel as kernel  # the fixtures, shared with the magics tests
from test_magics import undeploy_at_end as undeploy_at_end

from jupyter_sparkserve.cells import CELLS_MIME_TYPE
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.lifecycle import snippets_for
from jupyter_sparkserve.quiet import NOTE_LENGTH, quiet
from jupyter_sparkserve.repository import ModelRepository
from jupyter_sparkserve.workflows import JobRunner

# What a user holds under the names a snippet would once have overwritten.
USER_VALUES = {"model": "my own model", "data": [1, 2, 3], "predictions": {"mine": True}}


def cells_of(outputs: dict[str, list]) -> list[str]:
    return [cell["source"] for cell in bundle_of(outputs)[CELLS_MIME_TYPE]["cells"]]


def test_inserted_cells_leave_the_users_variables_and_tracking_uri_alone(
    kernel: Kernel,
    repo: ModelRepository,
    iris_saved: str,
    iris: tuple,
    tmp_path: Path,
    undeploy_at_end: Deployments,
) -> None:
    user_uri = f"sqlite:///{tmp_path / 'users-own-mlflow.db'}"
    kernel.ok(
        "import mlflow\n"
        f"mlflow.set_tracking_uri({user_uri!r})\n"
        + "".join(f"{name} = {value!r}\n" for name, value in USER_VALUES.items())
    )
    expected = expected_predictions(repo, iris_saved, iris[0].head(3))  # the example's rows

    # Registered, not deployed: the offline cell loads it from MLflow and scores.
    kernel.ok(f"%sfregister {iris_saved}")
    (offline,) = cells_of(kernel.ok(f"%sfsnippets {iris_saved}"))
    assert offline.startswith(f"# Score {iris_saved} offline from MLflow (models:/iris/1)\n")
    printed = "".join(kernel.ok(offline)["stdout"])
    assert printed.strip() == str(repo.load_pyfunc(iris_saved).predict(iris[0].head(3)))

    # Deployed: the python and the curl cell score at the endpoint.
    python, curl = cells_of(kernel.ok(f"%sfdeploy {iris_saved}"))
    assert python.startswith(f"# Score {iris_saved} at http://")
    assert json.loads("".join(kernel.ok(python)["stdout"])) == expected
    assert json.loads("".join(kernel.ok(curl)["stdout"])) == {"predictions": expected}

    for name, value in USER_VALUES.items():
        assert kernel.value(name) == json.loads(json.dumps(value)), name
    assert kernel.value("mlflow.get_tracking_uri()") == user_uri
    # Each cell assigns one name of its own, after the version.
    assert kernel.value("sorted(n for n in globals() if n.startswith('iris_1_'))") == [
        "iris_1_model",
        "iris_1_response",
    ]

    # The curl cell: `%%bash`, a comment, then the command exactly as the Snippets dialog
    # shows it, so the cell's text pastes into a terminal as it is.
    magic, comment, body = curl.split("\n", 2)
    assert (magic, comment) == ("%%bash", f"# Score {iris_saved} with curl")
    (deployment,) = undeploy_at_end.list(active_only=True)
    assert body == snippets_for(repo, deployment.id).snippets[1].code
    pasted = subprocess.run(["bash", "-c", f"{comment}\n{body}"], capture_output=True, text=True)
    assert json.loads(pasted.stdout) == {"predictions": expected}, pasted.stderr


def says_what_it_does(source: str) -> bool:
    """A cell's rule: a one-line comment first, or right after the cell magic that must come
    first (`%%bash`, `%%writefile FILE`)."""
    lines = source.split("\n")
    first = 1 if lines[0].startswith("%%") else 0
    return len(lines) > first and lines[first].startswith("# ") and len(lines[first]) > 2


def test_the_manifest_cell_writes_a_file_that_says_what_it_is(
    kernel: Kernel, iris_saved: str, tmp_path: Path
) -> None:
    """`%%writefile` must be a cell's first line, so the manifest cell says what it does with
    the magic and, right after it, the comment its YAML file starts with."""
    shown = kernel.ok(f"%sfk8s {iris_saved} --image registry.example/iris:1 --cells bundle")
    write, apply = cells_of(shown)
    assert all(says_what_it_does(cell) for cell in (write, apply)), (write, apply)
    magic, comment, _ = write.split("\n", 2)
    assert magic == "%%writefile iris-v1.yaml"
    assert comment == "# iris-v1.yaml: Kubernetes manifests serving iris:1 (Deployment, Service)"
    assert apply.split("\n")[:2] == ["%%bash", "# Apply it to the cluster"]

    ran = kernel.ok(write)
    assert ran["stderr"] == [] and "Writing iris-v1.yaml" in "".join(ran["stdout"])
    written = (tmp_path / "iris-v1.yaml").read_text()
    assert written.split("\n", 1)[0] == comment  # the file says what it is, first
    documents = list(yaml.safe_load_all(written))
    assert [document["kind"] for document in documents] == ["Deployment", "Service"]
    image = documents[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example/iris:1"

    # The rule holds for every cell the other magics insert too.
    kernel.ok(f"%sfregister {iris_saved}")
    assert all(says_what_it_does(c) for c in cells_of(kernel.ok(f"%sfsnippets {iris_saved}")))
    assert not says_what_it_does("%%writefile x.yaml\nkind: Service")  # the rule can fail


def test_save_register_and_deploy_write_nothing_to_stderr(
    kernel: Kernel, repo: ModelRepository, undeploy_at_end: Deployments
) -> None:
    kernel.ok(
        "from sklearn.tree import DecisionTreeClassifier\n"
        "clf = DecisionTreeClassifier(max_depth=3).fit(X, y)\n"
        "rows = X.head(3)\n"
    )
    ran = {
        # The README's Python API first: the kernel's first MLflow import happens in it.
        "save (Python)": kernel.ok(
            "from jupyter_sparkserve.repository import ModelRepository\n"
            "ModelRepository().save(clf, 'iris-python', input_example=rows)"
        ),
        "save": kernel.ok("%sfsave clf iris -x rows"),
        "register": kernel.ok("%sfregister iris"),
        "deploy": kernel.ok("%sfdeploy iris"),
    }
    (deployment,) = undeploy_at_end.list(active_only=True)
    ran["undeploy"] = kernel.ok(f"%sfundeploy {deployment.id}")
    ran["deploy, registering"] = kernel.ok("%sfdeploy iris --register --no-cells")
    for step, outputs in ran.items():
        assert outputs["stderr"] == [], (step, outputs["stderr"])
        notes = [line for line in "".join(outputs["stdout"]).splitlines() if "Note" in line]
        assert all(line.startswith("Note: ") for line in notes), (step, notes)
        assert all(len(line) <= len("Note: ") + NOTE_LENGTH for line in notes), notes
        assert "Traceback" not in "".join(outputs["stdout"])
    assert "Saved iris:1 (sklearn)" in "".join(ran["save"]["stdout"])
    assert "Registered iris:1 as models:/iris/1" in "".join(ran["register"]["stdout"])


def test_load_ext_empty_lists_and_score_checks_before_a_job(
    home: Path, tmp_path: Path, repo: ModelRepository, iris_saved: str, iris: tuple
) -> None:
    kernel = Kernel(env={**os.environ, "SPARKSERVE_HOME": str(home)}, cwd=tmp_path)
    try:
        loaded = kernel.ok("%load_ext jupyter_sparkserve")
        (line,) = "".join(loaded["stdout"]).splitlines()
        assert line.startswith("sparkserve magics: %sfsave ") and "%sfdeploy" in line
        assert loaded["stderr"] == []

        for magic, said in [
            ("%sfjobs", "No jobs yet."),
            ("%sfjobs --status failed", "No failed jobs."),
            ("%sfdeployments --all", "No deployments."),
            ("%sfmodels --filter nothing-like-it", "No models match."),
        ]:
            shown = kernel.ok(magic)
            assert "".join(shown["stdout"]).strip() == said and shown["result"] == [], magic

        features, _ = iris
        features.drop(columns=[features.columns[0]]).to_csv(tmp_path / "short.csv", index=False)
        for line, message in [
            (f"%sfscore {iris_saved} nosuch.csv out.csv", "does not exist"),
            (f"%sfscore {iris_saved} short.csv out.csv", f"has no column '{features.columns[0]}'"),
        ]:
            refused = kernel.run(line)
            assert refused["reply"][0]["ename"] == "UsageError", refused
            assert message in "".join(refused["stderr"])
        assert JobRunner(repo).list() == []  # refused before a job was made
        assert not (tmp_path / "out.csv").exists()
    finally:
        kernel.close()


def test_quiet_never_swaps_stderr_off_the_main_thread_nor_outside_a_kernel() -> None:
    import sys
    import threading

    from jupyter_sparkserve.quiet import in_notebook

    seen: list[object] = []

    def worker() -> None:
        with quiet():  # a server's worker thread: sys.stderr stays the process's
            seen.append(sys.stderr)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [sys.stderr]
    with in_notebook():  # pytest's stderr is no notebook cell's: nothing changes
        assert sys.stderr is seen[0]
    with quiet() as outer, quiet() as inner:  # nested: the outer call collects
        warnings.warn("about your model", UserWarning, stacklevel=1)
    assert (outer, inner) == (["about your model"], [])


def test_quiet_keeps_mlflow_off_stderr_and_words_what_matters_once(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import mlflow  # noqa: F401  (its loggers and their stderr handler)

    long_hint = "Hint: the schema has integers. " + "More detail follows here. " * 10
    with quiet() as notes:
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow tables...")
        logging.getLogger("mlflow.models").warning("\x1b[33mModel logged without a signature.")
        for _ in range(2):
            warnings.warn(long_hint, UserWarning, stacklevel=1)
        warnings.warn("an old API", DeprecationWarning, stacklevel=1)
        pd.DataFrame({"a": [1]}).to_string()
    assert capfd.readouterr().err == ""
    # The logged warning, then the UserWarning once, cut at a sentence end; no deprecation.
    logged, hint = notes
    assert logged == "Model logged without a signature."
    assert hint.startswith("Hint: the schema has integers. More detail follows here.")
    assert hint.endswith(".") and len(hint) <= NOTE_LENGTH and "\n" not in hint
