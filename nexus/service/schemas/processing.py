"""Video processing jobs and live streams at the boundary."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from nexus.service.schemas.common import Input, Output

TrackerName = Literal["bytetrack", "sort", "ocsort"]
ModelUri = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")]
SourceUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[^\x00\s]+$")]
TrackerValue = (
    bool | Annotated[int, Field(ge=-1_000_000, le=1_000_000)] | Annotated[float, Field(ge=-1e6, le=1e6)]
)
StreamState = Literal["starting", "running", "reconnecting", "ended", "failed", "stopped"]


def tracker_config(name: str, options: dict[str, TrackerValue], frame_rate: float | None = None) -> Any:
    """The config dataclass of tracker ``name`` with ``options`` applied (``ValueError`` if invalid).

    Example:
        >>> tracker_config("bytetrack", {"high_threshold": 0.4}).high_threshold
        0.4
    """
    from nexus.tracking import ByteTrackConfig, OCSORTConfig, SORTConfig

    config_class = {"bytetrack": ByteTrackConfig, "sort": SORTConfig, "ocsort": OCSORTConfig}[name]
    known = {f.name: f for f in fields(config_class)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown {name} option(s) {unknown}; known: {sorted(known)}")
    values = dict(options)
    if frame_rate and "frame_rate" in known and "frame_rate" not in values:
        values["frame_rate"] = frame_rate
    for key, value in values.items():
        expected = type(getattr(config_class(), key))
        if expected is bool and not isinstance(value, bool):
            raise ValueError(f"{name} option {key} must be true or false")
        if expected is not bool and isinstance(value, bool):
            raise ValueError(f"{name} option {key} must be a number")
        if expected is int and not float(value).is_integer():
            raise ValueError(f"{name} option {key} must be a whole number")
        values[key] = expected(value)
    try:
        return config_class(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} options: {error}") from error


class DetectionSettings(Input):
    """Which model runs, how confident a box must be, and which tracker links boxes into tracks."""

    model: ModelUri | None = Field(
        default=None,
        description="A model file under the service's model folders, models:/name@alias or s3:// URI; "
        "NEXUS_API_DETECTOR_MODEL when omitted.",
    )
    conf: Annotated[float, Field(ge=0, le=1)] = 0.25
    iou: Annotated[float, Field(ge=0, le=1)] = 0.7
    max_det: Annotated[int, Field(ge=1, le=1000)] = 300
    imgsz: Annotated[int, Field(ge=32, le=4096)] | None = None
    tracker: TrackerName = "bytetrack"
    tracker_options: Annotated[dict[str, TrackerValue], Field(max_length=16)] = Field(
        default_factory=dict, description="Fields of the tracker's config, e.g. high_threshold for bytetrack."
    )

    @model_validator(mode="after")
    def _tracker(self) -> DetectionSettings:
        tracker_config(self.tracker, self.tracker_options)
        return self


class ProcessRequest(DetectionSettings):
    """Options of one processing job: sampling (every Nth frame or a target fps) and batch size."""

    every: Annotated[int, Field(ge=1, le=10_000)] = 1
    fps: Annotated[float, Field(gt=0, le=1000)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=64)] = 8

    @model_validator(mode="after")
    def _sampling(self) -> ProcessRequest:
        if self.every > 1 and self.fps is not None:
            raise ValueError("choose one of every or fps, not both")
        return self


class StreamCreate(DetectionSettings):
    """A live stream to start: an rtsp(s)://, http(s):// URL, or a video file read as a stream."""

    source: SourceUrl
    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")] | None = None
    max_fps: Annotated[float, Field(gt=0, le=240)] | None = None
    realtime: bool = Field(default=True, description="Pace a file source at its frame rate, like a camera.")

    @field_validator("source")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme, sep, _ = value.partition("://")
        if sep and scheme.lower() not in {"rtsp", "rtsps", "http", "https", "file"}:
            raise ValueError("source must be an rtsp(s):// or http(s):// URL or a file path")
        return value


class StreamOut(Output):
    """A live stream of this service process and its counters."""

    id: int
    name: str
    source: str
    model: str
    tracker: TrackerName
    state: StreamState
    frames_processed: int
    frames_dropped: int
    connections: int
    last_error: str | None
    created_by: int
    created_at: datetime
    options: dict[str, Any]
