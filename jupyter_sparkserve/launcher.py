"""The `sparkserve` command's entry point: standard library only until it knows where to run.

`sparkserve score`, `register`, `reregister` and `deploy` run in a child of the warm scorer
when one is running for this installation (MLflow, its tracking store, the model flavors and
pyarrow already imported: they take a fraction of a second instead of seconds of imports);
anything else, or any run the warm scorer cannot take, runs here as a plain command.

A command that ran here ends with `os._exit` once its exit handlers have run and its streams
are flushed, as a run in the warm scorer does: tearing down the interpreter's modules and
objects after MLflow and scikit-learn were imported took longer than a second.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

WARM_COMMANDS = frozenset({"score", "register", "reregister", "deploy"})
GROUP_OPTIONS_WITH_VALUE = frozenset({"--home"})


def command_name(argv: list[str]) -> str | None:
    """The subcommand in `argv` (after the group's own options), if any."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GROUP_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def skip_iri_grammars() -> None:
    """jsonschema imports rfc3987-syntax when it is installed (jupyter_events brings it), and
    that compiles 38 grammars as it is imported: 1.3 s of every fresh command. sparkserve's
    schemas check no formats, so in its own processes jsonschema finds it missing (and goes
    without the `iri` format checks, as it does wherever the package is not installed)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


SCIPY_DOCSCRAPE = "scipy._lib._docscrape"


def skip_scipy_doc_notes() -> None:
    """scipy rewrites the docstrings of about 600 functions as it is imported, each parsed by
    its numpydoc scraper (`FunctionDoc`) to add notes: 0.2-0.3 s of a fresh command that loads
    a scikit-learn model. A command shows no docstring, so in its processes the scraper leaves
    them as they are. Nothing is imported here: the change is made if scipy loads its scraper."""
    if SCIPY_DOCSCRAPE in sys.modules or any(isinstance(f, _AfterImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _AfterImport(SCIPY_DOCSCRAPE, _unparsed_function_docs))


class _AfterImport:
    """A meta path finder that calls `then(module)` once module `name` has run."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(fullname, path)
        loader = getattr(spec, "loader", None)
        if spec is None or not hasattr(loader, "exec_module"):
            return spec
        run, then = loader.exec_module, self.then

        def exec_module(module: ModuleType) -> None:
            run(module)
            then(module)

        loader.exec_module = exec_module  # type: ignore[union-attr]
        return spec


def _unparsed_function_docs(docscrape: ModuleType) -> None:
    class FunctionDoc(dict):  # type: ignore[type-arg]
        """scipy's FunctionDoc, unparsed: every section empty, the docstring as it was."""

        def __init__(self, func: Any, role: str = "func", doc: Any = None, config: Any = None):
            super().__init__()
            self.doc = (func.__doc__ if doc is None else doc) or ""

        def __missing__(self, section: str) -> list[Any]:
            self[section] = []
            return self[section]

        def __str__(self) -> str:
            return "\n" + self.doc  # scipy drops the first line, the signature

    docscrape.FunctionDoc = FunctionDoc


def main() -> None:
    skip_iri_grammars()
    skip_scipy_doc_notes()
    argv = sys.argv[1:]
    if command_name(argv) in WARM_COMMANDS:
        from .warm import client

        code = client.run_attached("cli", argv)
        if code is not None:
            sys.exit(code)
    from .cli import main as cli_main

    try:
        cli_main(args=argv, prog_name="sparkserve")
        code = 0
    except SystemExit as exit:
        code = exit_code(exit.code)
    exit_now(code)


def exit_code(code: object) -> int:
    """The process exit code for a SystemExit's `code`, as the interpreter would make it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: int) -> None:
    """Run the exit handlers, flush the standard streams, and end the process without
    tearing the interpreter down (which buys nothing to a process that ends now)."""
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)
