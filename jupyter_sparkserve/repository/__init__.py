"""The native model repository."""

from .records import ModelDetails, ModelSummary, ModelVersion, Page
from .refs import ModelRef
from .repository import ModelRepository

__all__ = ["ModelDetails", "ModelRef", "ModelRepository", "ModelSummary", "ModelVersion", "Page"]
