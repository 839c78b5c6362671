"""IPython magics: the notebook face of the core (`%load_ext jupyter_sparkserve`)."""

from .deploying import DeployMagics
from .images import ImageMagics
from .sparkserve import SparkserveMagics

__all__ = ["DeployMagics", "ImageMagics", "SparkserveMagics"]
