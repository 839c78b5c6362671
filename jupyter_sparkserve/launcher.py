"""The `sparkserve` command's entry point: standard library only until it knows where to run.

`sparkserve score` runs in a child of the warm scorer when one is running for this
installation (MLflow, the model flavors and pyarrow already imported); anything else, or any
run the warm scorer cannot take, runs here as a plain command.
"""

from __future__ import annotations

import sys

WARM_COMMANDS = frozenset({"score"})
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


def main() -> None:
    argv = sys.argv[1:]
    if command_name(argv) in WARM_COMMANDS:
        from .warm import client

        code = client.run_attached("cli", argv)
        if code is not None:
            sys.exit(code)
    from .cli import main as cli_main

    cli_main(args=argv, prog_name="sparkserve")
