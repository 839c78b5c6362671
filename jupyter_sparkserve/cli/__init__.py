"""`sparkserve`: the command-line face. It parses, calls the core, and prints; one module
per command group, all answering through `output` (`--json` or text, errors and their
remedies worded as commands)."""

from . import capture, compare, deploy, jobs, models, scoring, tune  # noqa: F401 (they add their commands)
from .root import main

__all__ = ["main"]
