"""jupyter_sparkserve: model serving for people who work in Jupyter."""

from __future__ import annotations

from typing import Any

try:
    from ._version import __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter_sparkserve"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import SparkserveApp

    return [{"module": "jupyter_sparkserve", "app": SparkserveApp}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext jupyter_sparkserve` registers the sparkserve magics."""
    from .magics import load

    load(ipython)
