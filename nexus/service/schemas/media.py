"""Videos, detections and tracks at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from nexus.service.schemas.common import Count, Input, JsonDict, LongText, Output

VideoStatus = Literal["uploaded", "queued", "processing", "processed", "failed"]
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6)]
ClassLabel = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
MAX_BULK = 5000


class VideoUpdate(Input):
    """Metadata and processing status, reported by the processing job."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00/\\]+$")] | None = (
        None
    )
    status: VideoStatus | None = None
    fps: Annotated[float, Field(gt=0, le=1000)] | None = None
    frame_count: Count | None = None
    width: Annotated[int, Field(ge=1, le=100_000)] | None = None
    height: Annotated[int, Field(ge=1, le=100_000)] | None = None
    duration_s: Annotated[float, Field(ge=0, le=1e7)] | None = None
    extra: JsonDict | None = None
    message: LongText | None = None


class VideoOut(Output):
    """A stored video."""

    id: int
    name: str
    object_key: str
    content_type: str
    size_bytes: int
    sha256: str
    status: VideoStatus
    fps: float | None
    frame_count: int | None
    width: int | None
    height: int | None
    duration_s: float | None
    extra: dict[str, Any]
    message: str
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class DetectionIn(Input):
    """One box in one frame, in pixels (``x1 <= x2``, ``y1 <= y2``)."""

    frame: Count
    timestamp_s: Annotated[float, Field(ge=0, le=1e7)]
    class_id: Annotated[int, Field(ge=0, le=100_000)]
    class_name: ClassLabel
    confidence: Annotated[float, Field(ge=0, le=1)]
    x1: Coordinate
    y1: Coordinate
    x2: Coordinate
    y2: Coordinate
    track_id: Count | None = None

    @model_validator(mode="after")
    def _box(self) -> DetectionIn:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners must satisfy x1 <= x2 and y1 <= y2")
        return self


class DetectionBatch(Input):
    """Detections to insert in one statement."""

    detections: Annotated[list[DetectionIn], Field(min_length=1, max_length=MAX_BULK)]


class BulkResult(Output):
    """How many rows a bulk insert wrote."""

    inserted: int


class DetectionOut(Output):
    """A stored detection."""

    id: int
    video_id: int
    frame: int
    timestamp_s: float
    class_id: int
    class_name: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float
    track_id: int | None


class TrackOut(Output):
    """A track summarised from its detections."""

    video_id: int
    track_id: int
    class_name: str
    first_frame: int
    last_frame: int
    start_s: float
    end_s: float
    detections: int
    mean_confidence: float


class ArtifactOut(Output):
    """A stored image or artifact file."""

    id: int
    kind: Literal["image", "artifact"]
    name: str
    object_key: str
    content_type: str
    size_bytes: int
    sha256: str
    run_id: int | None
    created_by: int | None
    created_at: datetime
