"""Score workflows, the jobs that run them, and the e-mail reports jobs send."""

from .definitions import Workflow, Workflows, WorkflowSpec
from .jobs import Job, JobRunner
from .parameters import (
    ExecutionRequest,
    execution_request,
    parse_lib_jars,
    parse_program_parameters,
    parse_spark_config,
)

__all__ = [
    "ExecutionRequest",
    "Job",
    "JobRunner",
    "Workflow",
    "WorkflowSpec",
    "Workflows",
    "execution_request",
    "parse_lib_jars",
    "parse_program_parameters",
    "parse_spark_config",
]
