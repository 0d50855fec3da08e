"""``/datasets`` and their versions (``/datasets/{id}/versions``)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.catalog import (
    DatasetCreate,
    DatasetOut,
    DatasetUpdate,
    DatasetVersionCreate,
    DatasetVersionOut,
    DatasetVersionUpdate,
    Task,
)
from nexus.service.schemas.common import ERROR_RESPONSES, FilterText, IdPath, Limit, Offset, Page
from nexus.service.tables import Dataset, DatasetVersion

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERROR_RESPONSES)
DatasetSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]
VersionSort = Literal[
    "id", "-id", "version", "-version", "created_at", "-created_at", "num_images", "-num_images"
]


@router.post("", response_model=DatasetOut, status_code=status.HTTP_201_CREATED)
async def create_dataset(
    body: DatasetCreate, session: Session, caller: requires("datasets:write")
) -> Dataset:
    """Register a dataset."""
    return await create_row(
        session, caller, "dataset", Dataset(**body.model_dump(), created_by=caller.user_id)
    )


@router.get("", response_model=Page[DatasetOut])
async def list_datasets(
    session: Session,
    caller: requires("datasets:read"),
    name: FilterText = None,
    task: Task | None = None,
    sort: Annotated[DatasetSort, Query()] = "id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List datasets, filtered by name substring and task."""
    stmt = select(Dataset)
    if name:
        stmt = stmt.where(Dataset.name.contains(name, autoescape=True))
    if task:
        stmt = stmt.where(Dataset.task == task)
    return await paginate(session, stmt, Dataset, sort=sort, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut)
async def get_dataset(dataset_id: IdPath, session: Session, caller: requires("datasets:read")) -> Dataset:
    """One dataset."""
    return await get_or_404(session, Dataset, dataset_id, "dataset")


@router.patch("/{dataset_id}", response_model=DatasetOut)
async def update_dataset(
    dataset_id: IdPath, body: DatasetUpdate, session: Session, caller: requires("datasets:write")
) -> Dataset:
    """Change a dataset's description or classes."""
    dataset = await get_or_404(session, Dataset, dataset_id, "dataset")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await update_row(session, caller, "dataset", dataset, changes)


@router.post("/{dataset_id}/versions", response_model=DatasetVersionOut, status_code=status.HTTP_201_CREATED)
async def create_dataset_version(
    dataset_id: IdPath, body: DatasetVersionCreate, session: Session, caller: requires("datasets:write")
) -> DatasetVersion:
    """Register a version of a dataset (DVC hash, statistics, split sizes)."""
    await get_or_404(session, Dataset, dataset_id, "dataset")
    row = DatasetVersion(dataset_id=dataset_id, **body.model_dump(), num_images=sum(body.splits.values()))
    return await create_row(session, caller, "dataset_version", row)


@router.get("/{dataset_id}/versions", response_model=Page[DatasetVersionOut])
async def list_dataset_versions(
    dataset_id: IdPath,
    session: Session,
    caller: requires("datasets:read"),
    dvc_hash: FilterText = None,
    sort: Annotated[VersionSort, Query()] = "-id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """Versions of one dataset, newest first by default."""
    await get_or_404(session, Dataset, dataset_id, "dataset")
    stmt = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
    if dvc_hash:
        stmt = stmt.where(DatasetVersion.dvc_hash == dvc_hash)
    return await paginate(session, stmt, DatasetVersion, sort=sort, limit=limit, offset=offset)


@router.get("/{dataset_id}/versions/{version_id}", response_model=DatasetVersionOut)
async def get_dataset_version(
    dataset_id: IdPath, version_id: IdPath, session: Session, caller: requires("datasets:read")
) -> DatasetVersion:
    """One dataset version."""
    return await _version(session, dataset_id, version_id)


@router.patch("/{dataset_id}/versions/{version_id}", response_model=DatasetVersionOut)
async def update_dataset_version(
    dataset_id: IdPath,
    version_id: IdPath,
    body: DatasetVersionUpdate,
    session: Session,
    caller: requires("datasets:write"),
) -> DatasetVersion:
    """Fill in a version's statistics (hash and splits are immutable)."""
    row = await _version(session, dataset_id, version_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await update_row(session, caller, "dataset_version", row, changes)


async def _version(session, dataset_id: int, version_id: int) -> DatasetVersion:
    row = await get_or_404(session, DatasetVersion, version_id, "dataset version")
    if row.dataset_id != dataset_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset version {version_id} not found")
    return row
