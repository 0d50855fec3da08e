"""Datasets, models and their versions at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from nexus.service.schemas.common import Count, IdRef, Input, JsonDict, LongText, Metrics, Name, Output

Task = Literal["detect", "segment", "track", "classify", "pose"]
Version = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]
DvcHash = Annotated[str, StringConstraints(min_length=6, max_length=128, pattern=r"^[A-Za-z0-9.\-]+$")]
ClassName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
Alias = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_\-]*$")]
SplitName = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]


class DatasetCreate(Input):
    """A new dataset."""

    name: Name
    description: LongText = ""
    task: Task = "detect"
    classes: Annotated[list[ClassName], Field(max_length=1000)] = Field(default_factory=list)


class DatasetUpdate(Input):
    """Editable dataset fields."""

    description: LongText | None = None
    classes: Annotated[list[ClassName], Field(max_length=1000)] | None = None


class DatasetOut(Output):
    """A dataset."""

    id: int
    name: str
    description: str
    task: str
    classes: list[str]
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class DatasetVersionCreate(Input):
    """A new version: its DVC hash, statistics and split sizes."""

    version: Version
    dvc_hash: DvcHash
    stats: JsonDict = Field(default_factory=dict)
    splits: Annotated[dict[SplitName, Count], Field(max_length=16)] = Field(default_factory=dict)


class DatasetVersionUpdate(Input):
    """Statistics may be filled in after the version is registered."""

    stats: JsonDict | None = None


class DatasetVersionOut(Output):
    """A dataset version."""

    id: int
    dataset_id: int
    version: str
    dvc_hash: str
    stats: dict[str, Any]
    splits: dict[str, int]
    num_images: int
    created_at: datetime


class ModelCreate(Input):
    """A new registered model name."""

    name: Name
    description: LongText = ""
    task: Task = "detect"


class ModelUpdate(Input):
    """Editable model fields."""

    description: LongText | None = None


class ModelOut(Output):
    """A registered model."""

    id: int
    name: str
    description: str
    task: str
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class ModelVersionCreate(Input):
    """A new model version (the registry version number is assigned when omitted)."""

    version: IdRef | None = None
    mlflow_run_id: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")] | None
    ) = None
    artifact_uri: Annotated[str, StringConstraints(max_length=1024, pattern=r"^[^\x00]*$")] | None = None
    dataset_version_id: IdRef | None = None
    metrics: Annotated[Metrics, Field(max_length=200)] = Field(default_factory=dict)
    aliases: Annotated[list[Alias], Field(max_length=16)] = Field(default_factory=list)


class ModelVersionUpdate(Input):
    """Metrics and aliases change as a version is evaluated and promoted."""

    metrics: Annotated[Metrics, Field(max_length=200)] | None = None
    aliases: Annotated[list[Alias], Field(max_length=16)] | None = None


class ModelVersionOut(Output):
    """A model version."""

    id: int
    model_id: int
    version: int
    mlflow_run_id: str | None
    artifact_uri: str | None
    dataset_version_id: int | None
    metrics: dict[str, float]
    aliases: list[str]
    created_at: datetime
