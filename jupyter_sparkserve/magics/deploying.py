"""The magics that register, deploy and undeploy, and hand snippets to the notebook.

    %sfregister REF [--again]
    %sfdeploy REF [--target T] [--register] [target options] [--cells MODE | --no-cells]
    %sfsnippets ID_OR_REF [--cells MODE]
    %sfundeploy ID
    %sfdeployments [--all]

`%sfdeploy`'s target flags are generated from the options every installed target declares.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..deploy.deployments import Deployment, Deployments
from ..deploy.mlflow import MlflowRegistry
from ..deploy.targets import foreign_options, target_options, targets
from ..lifecycle import snippets_for
from ..quiet import in_notebook
from .common import (
    CELLS_MODES,
    RepositoryMagics,
    emit_snippets,
    parse,
    usage_errors,
)
from .output import StatusLine, show_fields

ARGPARSE_TYPES = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": lambda text: text.lower() == "true",
}


def _target_flags(function: Any) -> Any:
    """One flag per option of the installed targets (shared by targets that declare an
    option of the same name)."""
    for option, owners in reversed(target_options()):
        extra = f"; default ${option.env}" if option.env else ""
        function = argument(
            option.flag,
            dest=f"option_{option.name}",
            type=ARGPARSE_TYPES[option.type],
            help=f"{option.help} (target {', '.join(owners)}{extra})",
        )(function)
    return function


@magics_class
class DeployMagics(RepositoryMagics):
    @magic_arguments()
    @argument("model", metavar="REF", help="The model version: NAME, NAME:VERSION, NAME@ALIAS.")
    @argument("--again", action="store_true", help="Re-register: a new MLflow version of it.")
    @line_magic
    def sfregister(self, line: str) -> None:
        """Register a model version in MLflow: %sfregister iris@champion."""
        args = parse(self.sfregister, line)
        with usage_errors(), in_notebook():
            registry = MlflowRegistry(self.repository)
            done = registry.reregister(args.model) if args.again else registry.register(args.model)
        print(f"Registered {done.name}:{done.version} as {done.model_uri}")

    @magic_arguments()
    @argument("model", metavar="REF", help="The model version: NAME, NAME:VERSION, NAME@ALIAS.")
    @argument("--target", default="local", choices=list(targets()), help="Where to serve it.")
    @argument("--register", action="store_true", help="Register it in MLflow first if needed.")
    @argument("--cells", choices=CELLS_MODES, help="How the snippets arrive (default auto).")
    @argument("--no-cells", action="store_true", help="Do not add the snippet cells.")
    @_target_flags
    @line_magic
    def sfdeploy(self, line: str) -> None:
        """Deploy a registered model version as a REST endpoint, then add cells that score it:
        %sfdeploy iris@champion --register."""
        args = parse(self.sfdeploy, line)
        if args.no_cells and args.cells is not None:
            raise UsageError("Give --no-cells or --cells MODE, not both.")
        given = {
            name.removeprefix("option_"): value
            for name, value in vars(args).items()
            if name.startswith("option_") and value is not None
        }
        foreign = foreign_options(args.target, given)
        if foreign:
            raise UsageError(f"{', '.join(foreign)}: not an option of target {args.target}.")
        status = StatusLine(self.shell)
        with usage_errors():
            deployments = Deployments(self.repository)
            with in_notebook():
                deployment = deployments.begin(
                    args.model, args.target, given, register=args.register, environ=os.environ
                )
            started = time.monotonic()
            status.show(
                f"Deploying {deployment.ref} as {deployment.id} ({args.target}): waiting for "
                "the endpoint to answer…"
            )
            try:
                with in_notebook():
                    deployment = deployments.launch(deployment.id, given, environ=os.environ)
            except KeyboardInterrupt:
                raise UsageError(
                    f"Interrupted: deployment {deployment.id} of {deployment.ref} was stopped "
                    "before its endpoint came up."
                ) from None
            status.show(
                f"Deployed {deployment.ref} as {deployment.id}: the endpoint answers at "
                f"{deployment.url} ({time.monotonic() - started:.1f} s)."
            )
            _show_deployment(deployment)
            if not args.no_cells:
                found = snippets_for(self.repository, deployment.id)
                mode = args.cells or "auto"
                emit_snippets(self.shell, found.snippets, found.summary, key=found.key, mode=mode)

    @magic_arguments()
    @argument("target", metavar="ID_OR_REF", help="A deployment id, or a registered version.")
    @argument("--cells", choices=CELLS_MODES, default="auto", help="How the snippets arrive.")
    @line_magic
    def sfsnippets(self, line: str) -> None:
        """Cells that score a deployment (python and curl) or, for a registered version, load
        it from MLflow and score a DataFrame: %sfsnippets 3f2a9c1b0d4e."""
        args = parse(self.sfsnippets, line)
        with usage_errors():
            found = snippets_for(self.repository, args.target)
        emit_snippets(self.shell, found.snippets, found.summary, key=args.target, mode=args.cells)

    @magic_arguments()
    @argument("deployment", metavar="ID", help="The deployment to stop (%sfdeploy prints it).")
    @line_magic
    def sfundeploy(self, line: str) -> None:
        """Stop a deployment: %sfundeploy 3f2a9c1b0d4e."""
        args = parse(self.sfundeploy, line)
        with usage_errors():
            deployment = Deployments(self.repository).undeploy(args.deployment)
        print(f"Undeployed {deployment.ref} ({deployment.id}): {deployment.url} is stopped.")

    @magic_arguments()
    @argument("--all", action="store_true", help="Stopped and failed ones too.")
    @line_magic
    def sfdeployments(self, line: str) -> pd.DataFrame | None:
        """The deployments that are up (all of them with --all), newest first."""
        args = parse(self.sfdeployments, line)
        with usage_errors():
            found = Deployments(self.repository).list(active_only=not args.all)
        if not found:
            print("No deployments." if args.all else "No deployments up (--all: every one).")
            return None
        rows = [
            {
                "id": d.id,
                "model": d.ref,
                "target": d.target,
                "status": d.status,
                "url": d.url,
                "actions": ", ".join(action.value for action in d.actions),
                "created_at": d.created_at,
                "error": d.error.splitlines()[0] if d.error else "",
            }
            for d in found
        ]
        columns = ["id", "model", "target", "status", "url", "actions", "created_at", "error"]
        return pd.DataFrame(rows, columns=columns)


def _show_deployment(deployment: Deployment) -> None:
    show_fields(
        f"Deployment {deployment.id}",
        [
            ("model", deployment.ref),
            ("MLflow model", deployment.model_uri),
            ("target", deployment.target),
            ("URL", deployment.url),
            ("status", deployment.status),
            *deployment.shown_details(),
            ("undeploy", f"%sfundeploy {deployment.id}"),
        ],
    )
