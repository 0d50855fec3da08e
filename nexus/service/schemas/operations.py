"""Pipeline runs, deployments and experiments at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from nexus.service.schemas.common import IdRef, Input, JsonDict, LongText, Metrics, Name, Output

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
DeploymentStatus = Literal["pending", "ready", "failed", "retired"]
ExperimentStatus = Literal["draft", "running", "stopped"]
Percent = Annotated[int, Field(ge=0, le=100)]
Link = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")]
LinkName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
Endpoint = Annotated[str, StringConstraints(max_length=1024, pattern=r"^https?://[^\s\x00]+$")]


class RunCreate(Input):
    """A pipeline run, recorded ``queued``.

    With ``launch`` the service runs it: ``pipeline`` must be one of the platform's pipelines
    (``training``, ``retrain-on-drift``) and ``parameters`` its parameters, checked and converted to their
    declared types up front (422 naming the wrong one). Without it the run is only recorded, for an
    outside launcher to report on with PATCH.
    """

    pipeline: Name
    parameters: JsonDict = Field(default_factory=dict)
    launch: bool = False


class RunUpdate(Input):
    """Status changes, metrics and artifact links reported by an outside launcher (a run the service
    launched takes metrics and links only; its status and handle are the service's)."""

    status: RunStatus | None = None
    metrics: Annotated[Metrics, Field(max_length=500)] | None = None
    artifacts: Annotated[dict[LinkName, Link], Field(max_length=200)] | None = None
    external_id: Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00]*$")] | None = None
    message: LongText | None = None


class RunOut(Output):
    """A pipeline run."""

    id: int
    pipeline: str
    status: RunStatus
    parameters: dict[str, Any]
    metrics: dict[str, float]
    artifacts: dict[str, str]
    external_id: str | None
    message: str
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DeploymentCreate(Input):
    """A new deployment serving one model version."""

    name: Name
    model_version_id: IdRef
    endpoint: Endpoint | None = None


class DeploymentUpdate(Input):
    """Endpoint and status changes (traffic changes go through the promotion actions)."""

    endpoint: Endpoint | None = None
    status: DeploymentStatus | None = None


class DeploymentEventCreate(Input):
    """A traffic change: ``canary`` (send ``percent`` to ``model_version_id``), ``promote`` (the canary
    becomes stable) or ``rollback`` (drop the canary, or return to the previous stable version)."""

    kind: Literal["canary", "promote", "rollback"]
    model_version_id: IdRef | None = None
    percent: Annotated[int, Field(ge=1, le=99)] | None = None
    reason: LongText = ""

    @model_validator(mode="after")
    def _fields(self) -> DeploymentEventCreate:
        if self.kind == "canary" and (self.model_version_id is None or self.percent is None):
            raise ValueError("a canary needs model_version_id and percent")
        return self


class DeploymentOut(Output):
    """A deployment."""

    id: int
    name: str
    model_version_id: int
    canary_model_version_id: int | None
    canary_percent: int
    endpoint: str | None
    status: DeploymentStatus
    created_at: datetime
    updated_at: datetime


class DeploymentEventOut(Output):
    """One entry of a deployment's history."""

    id: int
    deployment_id: int
    kind: str
    from_model_version_id: int | None
    to_model_version_id: int | None
    canary_percent: int
    reason: str
    actor_id: int | None
    created_at: datetime


class Variant(Input):
    """One arm of an A/B experiment."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
    model_version_id: IdRef | None = None
    traffic_percent: Percent


def _check_variants(variants: list[Variant] | None) -> None:
    if variants is None:
        return
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be unique")
    if sum(v.traffic_percent for v in variants) != 100:
        raise ValueError("variant traffic percentages must add up to 100")


class ExperimentCreate(Input):
    """A new A/B experiment; traffic percentages add up to 100."""

    name: Name
    description: LongText = ""
    variants: Annotated[list[Variant], Field(min_length=2, max_length=10)]

    @model_validator(mode="after")
    def _variants(self) -> ExperimentCreate:
        _check_variants(self.variants)
        return self


class ExperimentUpdate(Input):
    """Status, description or a new traffic split."""

    description: LongText | None = None
    status: ExperimentStatus | None = None
    variants: Annotated[list[Variant], Field(min_length=2, max_length=10)] | None = None

    @model_validator(mode="after")
    def _variants(self) -> ExperimentUpdate:
        _check_variants(self.variants)
        return self


OutcomeName = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]


class OutcomeReport(Input):
    """Outcome counts to add to one variant (e.g. ``{"impressions": 100, "conversions": 7}``)."""

    variant: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
    counts: Annotated[
        dict[OutcomeName, Annotated[int, Field(ge=0, le=1_000_000)]], Field(min_length=1, max_length=16)
    ]


class ExperimentOut(Output):
    """An experiment with its variants and accumulated outcome counts per variant."""

    id: int
    name: str
    description: str
    status: ExperimentStatus
    variants: list[dict[str, Any]]
    outcomes: dict[str, dict[str, int]]
    created_at: datetime
    updated_at: datetime
