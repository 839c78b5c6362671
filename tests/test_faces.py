"""The faces word what the core decides: every remedy the core can name is worded by the
CLI (a command) and the magics (a magic), and no core module words one itself."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jupyter_sparkserve
from jupyter_sparkserve.cli.output import REMEDY_COMMANDS, remedy_command
from jupyter_sparkserve.errors import REMEDIES, Remedy, SparkserveError
from jupyter_sparkserve.magics.common import REMEDY_MAGICS, remedy_magic

PACKAGE = Path(jupyter_sparkserve.__file__).parent
FACES = ("cli", "magics", "server")  # they word errors for their audience
COMMAND_TEXT = re.compile(
    r"\bsparkserve (register|reregister|deploy|undeploy|deployments|models|jobs|workflows|"
    r"snippets|score|scorer|serve|status|demo)\b"
)
EXAMPLE_ARGS = {
    "ref": "iris:2",
    "register": True,
    "deployment": "0b4c",
    "job": "9f1e",
    "source": "runs:/r/m",
}


@pytest.mark.parametrize("action", sorted(REMEDIES))
def test_every_remedy_is_worded_by_the_cli_and_the_magics(action: str) -> None:
    remedy = Remedy(action, {name: EXAMPLE_ARGS[name] for name in REMEDIES[action]})
    command, magic = remedy_command(remedy), remedy_magic(remedy)
    assert command.startswith("sparkserve ")
    assert magic.startswith(("%sf", "!sparkserve "))
    for value in remedy.args.values():
        if isinstance(value, str):
            assert value in command and value in magic
    assert set(REMEDY_COMMANDS) == set(REMEDIES) == set(REMEDY_MAGICS)


def _error_classes() -> set[str]:
    for module in pkgutil.walk_packages([str(PACKAGE)], "jupyter_sparkserve."):
        if not module.name.endswith(("__main__", "labextension")):
            importlib.import_module(module.name)
    found, todo = set(), [SparkserveError]
    while todo:
        kind = todo.pop()
        found.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return found


def test_no_core_module_words_a_command_or_a_magic_in_an_error() -> None:
    errors = _error_classes()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in FACES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in errors:
                continue
            for part in ast.walk(node):
                text = part.value if isinstance(part, ast.Constant) else None
                if isinstance(text, str) and (COMMAND_TEXT.search(text) or "%sf" in text):
                    offenders.append(f"{relative}:{part.lineno}: {text!r}")
    assert offenders == []


def test_the_workflow_settings_schema_is_the_spec_dataclass() -> None:
    """openapi.yaml's WorkflowSettings (what every face sends) and WorkflowSpec (what the
    core keeps) name the same settings."""
    import dataclasses

    from jupyter_sparkserve import shapes
    from jupyter_sparkserve.workflows import WorkflowSpec

    declared = list(shapes.schema("WorkflowSettings")["properties"])
    assert declared == [field.name for field in dataclasses.fields(WorkflowSpec)]
    assert list(shapes.schema("WorkflowSpec")["properties"]) == declared


def test_only_the_supervisor_reads_proc_or_signals_process_groups() -> None:
    """processes.py is the one supervisor; psutil is a dependency for it."""
    from importlib.metadata import requires

    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "processes.py" and path.parent == PACKAGE:
            continue
        text = path.read_text()
        for needle in ('"/proc', "'/proc", "/proc/", "killpg(", "getpgid("):
            if needle in text:
                readers.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert readers == []
    assert any(line.startswith("psutil") for line in requires("jupyter_sparkserve") or [])


def test_the_specs_name_and_alias_patterns_are_the_repositorys_rules() -> None:
    """openapi.yaml states the name and alias rules the repository enforces."""
    import re

    from jupyter_sparkserve import shapes
    from jupyter_sparkserve.repository import names

    name = shapes.spec()["components"]["schemas"]["ModelName"]
    assert shapes.spec()["components"]["parameters"]["name"]["schema"]["$ref"].endswith(
        "/ModelName"
    )
    alias_parameter = shapes.spec()["paths"]["/models/{name}/aliases/{alias}"]["parameters"][1]
    alias = re.compile(alias_parameter["schema"]["pattern"])
    for text, ok in [("iris", True), ("9.x_y-z", True), (".hidden", False), ("a b", False),
                     ("a..b", False), ("a.", False), ("a.b.c", True),
                     ("x" * 128, True), ("x" * 129, False)]:  # fmt: skip
        assert _spec_accepts(name, text) == ok == _accepted(names.validate_model_name, text)
    for text, ok in [("champion", True), ("c_1-x", True), ("1st", False), ("x" * 65, False)]:
        assert bool(alias.search(text)) == ok == _accepted(names.validate_alias, text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ9._-/: @", max_size=12))
def test_the_spec_and_the_repository_agree_on_every_name(text: str) -> None:
    from jupyter_sparkserve import shapes
    from jupyter_sparkserve.repository import names

    name = shapes.spec()["components"]["schemas"]["ModelName"]
    assert _spec_accepts(name, text) == _accepted(names.validate_model_name, text)


def _spec_accepts(schema: dict, text: str) -> bool:
    import jsonschema

    return jsonschema.Draft202012Validator(schema).is_valid(text)


def _accepted(validate, text: str) -> bool:
    try:
        validate(text)
    except SparkserveError:
        return False
    return True


def test_no_module_of_the_package_is_over_500_lines() -> None:
    """Small modules with one job: a file past 500 lines is split along its sections."""
    long = {
        str(path.relative_to(PACKAGE)): count
        for path in PACKAGE.rglob("*.py")
        if "labextension" not in path.parts and (count := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
