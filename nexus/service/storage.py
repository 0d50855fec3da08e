"""Object storage: a local folder by default, any S3 server (MinIO, SeaweedFS...) via ``minio``.

Objects are written whole or not at all: the local store renames a finished temp file into place; the S3
store uploads a finished spool file (multipart uploads that fail are aborted by the client).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from nexus.service.settings import ServiceSettings

CHUNK = 256 * 1024


class ObjectStore(Protocol):
    """What the service needs from a store."""

    name: str

    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...
    def stream(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def ping(self) -> bool: ...


class LocalStore:
    """Objects as files under one folder.

    Example:
        >>> import tempfile
        >>> store = LocalStore(Path(tempfile.mkdtemp()))
        >>> store.name
        'local'
    """

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key escapes the store: {key}")
        return path

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)

        def _copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
            try:
                shutil.copyfile(path, partial)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)

        await asyncio.to_thread(_copy)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def ping(self) -> bool:
        return await asyncio.to_thread(lambda: self.root.is_dir() and os.access(self.root, os.W_OK))


class S3Store:
    """Objects in one bucket of an S3 server, through the ``minio`` client (blocking calls in threads)."""

    name = "s3"

    def __init__(self, settings: ServiceSettings) -> None:
        from minio import Minio

        self.bucket = settings.s3_bucket
        self.client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""

        def _ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

        await asyncio.to_thread(_ensure)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.fput_object, self.bucket, key, str(path), content_type=content_type
        )

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        response = await asyncio.to_thread(self.client.get_object, self.bucket, key)
        try:
            while chunk := await asyncio.to_thread(response.read, CHUNK):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    async def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            await asyncio.to_thread(self.client.stat_object, self.bucket, key)
        except S3Error as error:
            if error.code in {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}:
                return False
            raise
        return True

    async def ping(self) -> bool:
        try:
            return await asyncio.to_thread(self.client.bucket_exists, self.bucket)
        except Exception:
            return False


async def create_store(settings: ServiceSettings) -> ObjectStore:
    """The store the settings ask for (S3 buckets are created when missing)."""
    if settings.storage_backend == "s3":
        store = S3Store(settings)
        await store.ensure_bucket()
        return store
    assert settings.storage_dir is not None
    return LocalStore(settings.storage_dir)
