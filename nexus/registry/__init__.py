"""The model registry: MLflow model versions with ``champion``/``challenger`` aliases and lineage tags."""

from nexus.registry.lineage import Lineage, git_commit
from nexus.registry.model_registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    ModelRegistry,
    ModelVersionInfo,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "Lineage",
    "ModelRegistry",
    "ModelVersionInfo",
    "git_commit",
]
