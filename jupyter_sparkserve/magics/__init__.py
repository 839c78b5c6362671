"""IPython magics: the notebook face of the core (`%load_ext jupyter_sparkserve`)."""

from .deploying import DeployMagics
from .sparkserve import SparkserveMagics

__all__ = ["DeployMagics", "SparkserveMagics"]
