"""Building blocks shared by every request/response model: safe strings, JSON blobs, pages, errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_INT = 2_147_483_647
MAX_JSON_DEPTH = 8


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _json_text(value: str) -> str:
    _no_nul(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            "strings must be valid Unicode: an unpaired surrogate escape such as \\ud800 is not allowed"
        ) from error
    return value


def _clean_json(value: Any, depth: int = 0) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        return _json_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise ValueError("integers must fit in 53 bits")
    if isinstance(value, dict):
        return {_json_text(str(k)): _clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v, depth + 1) for v in value]
    return value


def _instant(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1900 <= value.year <= 9000:
        raise ValueError("year must be between 1900 and 9000")
    return value.astimezone(UTC)


Instant = Annotated[datetime, AfterValidator(_instant)]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
]
ShortText = Annotated[str, StringConstraints(max_length=256), AfterValidator(_no_nul)]
LoginName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_nul)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_no_nul)]  # users.email's length
LongText = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(_no_nul)]
JsonDict = Annotated[dict[str, Any], AfterValidator(_clean_json)]
Metrics = dict[Annotated[str, StringConstraints(max_length=128), AfterValidator(_no_nul)], float]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
IdRef = Annotated[int, Field(ge=1, le=MAX_INT)]
IdPath = Annotated[int, Path(ge=1, le=MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")]
FilterText = Annotated[str | None, Query(max_length=128), AfterValidator(lambda v: v and _no_nul(v))]


class Input(BaseModel):
    """Base of request bodies: unknown fields are rejected, floats must be finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=False)


class Output(BaseModel):
    """Base of response bodies, read from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing.

    Example:
        >>> Page[int](items=[1, 2], total=5, limit=2, offset=0).total
        5
    """

    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    """Every error answer: a detail and the request id to find the log lines."""

    detail: Any
    request_id: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad request",
        401: "Not authenticated",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        429: "Too many requests",
    }.items()
}
