"""IPython magics: the notebook face of the core (`%load_ext jupyter_sparkserve`)."""

from __future__ import annotations

from typing import Any

from .compare import CompareMagics
from .deploying import DeployMagics
from .images import ImageMagics
from .monitor import MonitorMagics
from .sparkserve import SparkserveMagics

__all__ = [
    "CompareMagics",
    "DeployMagics",
    "ImageMagics",
    "MonitorMagics",
    "SparkserveMagics",
    "load",
]


def load(ipython: Any) -> None:
    """Register the magics and say, on one line, which there are."""
    names: list[str] = []
    for magics in (SparkserveMagics, DeployMagics, ImageMagics, MonitorMagics, CompareMagics):
        ipython.register_magics(magics)
        names += [f"%{name}" for name in magics.magics["line"]]
    print(f"sparkserve magics: {' '.join(names)} (%sfsave? shows one's help)")
