"""Streaming uploads: spooled chunk by chunk to a temp file, size-limited and type-checked on the way."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request, status

from nexus.service.media_types import ALLOWED, SNIFF_BYTES, UploadKind, sniff
from nexus.service.settings import ServiceSettings
from nexus.service.storage import ObjectStore


@dataclass(frozen=True)
class SpooledUpload:
    """A complete upload on local disk, with the facts checked while it streamed in."""

    path: Path
    size: int
    sha256: str
    content_type: str


async def spool_upload(
    chunks: AsyncIterator[bytes],
    *,
    kind: UploadKind,
    max_bytes: int,
    declared_length: str | None = None,
    directory: Path | None = None,
) -> SpooledUpload:
    """Stream ``chunks`` into a temp file; the caller deletes ``path`` when done.

    Raises:
        HTTPException: 413 past ``max_bytes``, 415 when the magic bytes are not an allowed type, 400 when
            the body is empty.
    """
    if declared_length and declared_length.isdigit() and int(declared_length) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {max_bytes} bytes")
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(prefix="nexus-upload-", dir=directory, delete=False)  # noqa: SIM115
    path = Path(handle.name)
    digest = hashlib.sha256()
    size = 0
    head = b""
    content_type: str | None = None
    try:
        with handle:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {max_bytes} bytes"
                    )
                if content_type is None:
                    head += chunk[: SNIFF_BYTES - len(head)]
                    if len(head) >= SNIFF_BYTES:
                        content_type = _check_type(head, kind)
                digest.update(chunk)
                handle.write(chunk)
        if size == 0:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "empty upload")
        if content_type is None:
            content_type = _check_type(head, kind)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SpooledUpload(path=path, size=size, sha256=digest.hexdigest(), content_type=content_type)


def _check_type(head: bytes, kind: UploadKind) -> str:
    detected = sniff(head)
    if detected is None or detected not in ALLOWED[kind]:
        allowed = ", ".join(sorted(ALLOWED[kind]))
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"content is {detected or 'of an unknown type'}; a {kind} upload must be one of: {allowed}",
        )
    return detected


@contextlib.asynccontextmanager
async def stored_upload(
    request: Request, store: ObjectStore, settings: ServiceSettings, kind: UploadKind, prefix: str
) -> AsyncIterator[tuple[SpooledUpload, str]]:
    """Spool the request body, put it in ``store`` and yield ``(upload, object_key)``.

    The caller writes its DB row inside the ``async with`` block; if that raises, the object is deleted
    again, so a failed upload leaves neither an object nor a row. The spool file is always removed.
    """
    spooled = await spool_upload(
        request.stream(),
        kind=kind,
        max_bytes=settings.max_upload_bytes,
        declared_length=request.headers.get("content-length"),
        directory=settings.home / "spool",
    )
    key = f"{prefix}/{spooled.sha256[:2]}/{spooled.sha256}-{request.state.request_id}"
    try:
        await store.put_file(key, spooled.path, spooled.content_type)
        try:
            yield spooled, key
        except BaseException:
            await store.delete(key)
            raise
    finally:
        spooled.path.unlink(missing_ok=True)
    request.app.state.metrics.uploads.labels(kind).inc(spooled.size)
