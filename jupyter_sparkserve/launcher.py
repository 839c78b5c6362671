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


def main() -> None:
    skip_iri_grammars()
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
