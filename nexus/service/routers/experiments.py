"""``/experiments``: A/B tests with variants, a traffic split and outcome counts."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from nexus.service.audit import record, snapshot
from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.common import ERROR_RESPONSES, FilterText, IdPath, Limit, Offset, Page
from nexus.service.schemas.operations import (
    ExperimentCreate,
    ExperimentOut,
    ExperimentStatus,
    ExperimentUpdate,
    OutcomeReport,
)
from nexus.service.tables import Experiment, ModelVersion

router = APIRouter(prefix="/experiments", tags=["experiments"], responses=ERROR_RESPONSES)
ExperimentSort = Literal[
    "id", "-id", "name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"
]
MAX_COUNT = 2**53


async def _check_model_versions(session, variants) -> None:
    for variant in variants:
        if variant.model_version_id is not None:
            await get_or_404(session, ModelVersion, variant.model_version_id, "model version")


@router.post("", response_model=ExperimentOut, status_code=status.HTTP_201_CREATED)
async def create_experiment(
    body: ExperimentCreate, session: Session, caller: requires("experiments:write")
) -> Experiment:
    """Create an experiment in ``draft`` status."""
    await _check_model_versions(session, body.variants)
    variants = [v.model_dump() for v in body.variants]
    row = Experiment(
        name=body.name,
        description=body.description,
        status="draft",
        variants=variants,
        outcomes={v["name"]: {} for v in variants},
    )
    return await create_row(session, caller, "experiment", row)


@router.get("", response_model=Page[ExperimentOut])
async def list_experiments(
    session: Session,
    caller: requires("experiments:read"),
    name: FilterText = None,
    status_: Annotated[ExperimentStatus | None, Query(alias="status")] = None,
    sort: Annotated[ExperimentSort, Query()] = "id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List experiments, filtered by name substring and status."""
    stmt = select(Experiment)
    if name:
        stmt = stmt.where(Experiment.name.contains(name, autoescape=True))
    if status_:
        stmt = stmt.where(Experiment.status == status_)
    return await paginate(session, stmt, Experiment, sort=sort, limit=limit, offset=offset)


@router.get("/{experiment_id}", response_model=ExperimentOut)
async def get_experiment(
    experiment_id: IdPath, session: Session, caller: requires("experiments:read")
) -> Experiment:
    """One experiment."""
    return await get_or_404(session, Experiment, experiment_id, "experiment")


@router.patch("/{experiment_id}", response_model=ExperimentOut)
async def update_experiment(
    experiment_id: IdPath, body: ExperimentUpdate, session: Session, caller: requires("experiments:write")
) -> Experiment:
    """Start/stop an experiment, edit its description or re-split traffic (outcomes are kept per name;
    a variant with recorded outcomes cannot be dropped, only set to 0%)."""
    row = await get_or_404(session, Experiment, experiment_id, "experiment")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if body.variants is not None:
        await _check_model_versions(session, body.variants)
        kept = {v.name for v in body.variants}
        counted = sorted(name for name, counts in (row.outcomes or {}).items() if counts and name not in kept)
        if counted:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"variant(s) {', '.join(counted)} have recorded outcomes that a re-split without them would "
                "lose: keep them with traffic_percent 0, or stop this experiment and create a new one",
            )
        changes["outcomes"] = {v.name: dict((row.outcomes or {}).get(v.name, {})) for v in body.variants}
    return await update_row(session, caller, "experiment", row, changes)


@router.post("/{experiment_id}/outcomes", response_model=ExperimentOut)
async def report_outcomes(
    experiment_id: IdPath, body: OutcomeReport, session: Session, caller: requires("experiments:write")
) -> Experiment:
    """Add outcome counts to one variant of a running experiment."""
    row = await get_or_404(session, Experiment, experiment_id, "experiment")
    if row.status != "running":
        raise HTTPException(status.HTTP_409_CONFLICT, f"experiment is {row.status}, not running")
    outcomes = {name: dict(counts) for name, counts in (row.outcomes or {}).items()}
    if body.variant not in outcomes:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"variant {body.variant} not found")
    before = snapshot(row)
    for key, value in body.counts.items():
        outcomes[body.variant][key] = min(MAX_COUNT, outcomes[body.variant].get(key, 0) + value)
    row.outcomes = outcomes
    await session.flush()
    await session.refresh(row)
    record(session, caller, "outcomes", "experiment", row.id, before, snapshot(row))
    await session.commit()
    return row
