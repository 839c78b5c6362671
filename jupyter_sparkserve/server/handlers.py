"""REST routes under `{base_url}sparkserve/api/v1/` (openapi.yaml describes them)."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from .base import API_PREFIX
from .checks import DeployCheckHandler, ManifestFileCheckHandler, ScoreCheckHandler
from .deployments import (
    DeploymentDismissHandler,
    DeploymentHandler,
    DeploymentMetricsHandler,
    DeploymentsHandler,
    DeploymentSnippetsHandler,
)
from .live import ChangesHandler, ClearFinishedJobsHandler
from .models import (
    AliasHandler,
    BuildImageHandler,
    KubernetesHandler,
    ModelHandler,
    ModelsHandler,
    RegisterHandler,
    ReregisterHandler,
    ScoreHandler,
    VersionHandler,
    VersionSnippetsHandler,
)
from .status import StatusHandler
from .workflows import (
    ExecuteHandler,
    JobCancelHandler,
    JobHandler,
    JobLogHandler,
    JobsHandler,
    WorkflowHandler,
    WorkflowsHandler,
)

SEGMENT = "[^/]+"
MODEL = rf"models/(?P<name>{SEGMENT})"
VERSION = rf"{MODEL}/versions/(?P<version>{SEGMENT})"
DEPLOYMENT = rf"deployments/(?P<deployment_id>{SEGMENT})"
JOB = rf"jobs/(?P<job_id>{SEGMENT})"

ROUTES: list[tuple[str, Any]] = [
    ("status", StatusHandler),
    ("changes", ChangesHandler),
    ("models", ModelsHandler),
    (MODEL, ModelHandler),
    (rf"{MODEL}/aliases/(?P<alias>{SEGMENT})", AliasHandler),
    (VERSION, VersionHandler),
    (f"{VERSION}/register", RegisterHandler),
    (f"{VERSION}/reregister", ReregisterHandler),
    (f"{VERSION}/score", ScoreHandler),
    (f"{VERSION}/snippets", VersionSnippetsHandler),
    (f"{VERSION}/image", BuildImageHandler),
    (f"{VERSION}/kubernetes", KubernetesHandler),
    ("deployments", DeploymentsHandler),
    (DEPLOYMENT, DeploymentHandler),
    (f"{DEPLOYMENT}/snippets", DeploymentSnippetsHandler),
    (f"{DEPLOYMENT}/dismiss", DeploymentDismissHandler),
    (f"{DEPLOYMENT}/metrics", DeploymentMetricsHandler),
    ("workflows", WorkflowsHandler),
    (rf"workflows/(?P<workflow_id>{SEGMENT})", WorkflowHandler),
    ("workflow/execute", ExecuteHandler),
    ("jobs", JobsHandler),
    ("jobs/clear-finished", ClearFinishedJobsHandler),  # before JOB, which would match it
    (JOB, JobHandler),
    (f"{JOB}/log", JobLogHandler),
    (f"{JOB}/cancel", JobCancelHandler),
    ("checks/deploy", DeployCheckHandler),
    ("checks/score", ScoreCheckHandler),
    ("checks/manifest-file", ManifestFileCheckHandler),
]


def handler_routes() -> list[tuple[str, Any]]:
    """Routes relative to the server's base_url (ExtensionApp prefixes it)."""
    return [(url_path_join(API_PREFIX, path), handler) for path, handler in ROUTES]
