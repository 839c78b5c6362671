"""Targets this release cannot deploy to yet (AzureML): `status`
lists each as not usable, with what it would use on this machine, so the sidebar can say so.
When a target's plug-in is built, its `check` takes over the probe and its entry here goes.

Each probe answers in at most a few seconds and without side effects: an AzureML workspace
counts as configured when its variables are set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import AZUREML_ENVS
from ..plugins import Availability

NOT_BUILT = "Deploying here is not built yet."


def azureml_workspace(environ: Mapping[str, str] | None = None) -> Availability:
    env = os.environ if environ is None else environ
    missing = [name for name in AZUREML_ENVS if not env.get(name, "").strip()]
    if missing:
        return Availability(False, f"No AzureML workspace configured: set {', '.join(missing)}.")
    return Availability(True, f"AzureML workspace {env['AZUREML_WORKSPACE_NAME']}.")


@dataclass(frozen=True)
class PlannedTarget:
    name: str
    title: str
    probe: Callable[[], Availability]
    menu_label: str = ""

    def check(self) -> Availability:
        """Never usable: what the machine has, after saying it is not built yet."""
        return Availability(False, f"{NOT_BUILT} {self.probe().detail}")


PLANNED = (
    PlannedTarget("azureml", "Azure Machine Learning", azureml_workspace, "Deploy to AzureML…"),
)
