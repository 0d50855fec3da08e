"""SQLAlchemy tables of the metadata service, one module per group of resources."""

from nexus.service.tables.audit import AuditEntry
from nexus.service.tables.catalog import Dataset, DatasetVersion, Model, ModelVersion
from nexus.service.tables.identity import ApiKey, User
from nexus.service.tables.media import Artifact, Detection, Video
from nexus.service.tables.operations import Deployment, DeploymentEvent, Experiment, PipelineRun

__all__ = [
    "ApiKey",
    "Artifact",
    "AuditEntry",
    "Dataset",
    "DatasetVersion",
    "Deployment",
    "DeploymentEvent",
    "Detection",
    "Experiment",
    "Model",
    "ModelVersion",
    "PipelineRun",
    "User",
    "Video",
]
