"""S3 / MinIO access for command-line tools and pipeline steps (the ``minio`` client).

Endpoint and credentials come from the environment, as KServe's storage initializer reads them:
``S3_ENDPOINT`` (``host:port``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``S3_SECURE``
(``0``/``1``; plain HTTP by default for localhost). The metadata service has its own configured store
(``nexus.service.storage``).

Example:
    >>> parse_s3_uri("s3://frames/clip-7/")
    ('frames', 'clip-7')
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from nexus.errors import NexusError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)`` (prefix without surrounding slashes).

    Raises:
        NexusError: not an ``s3://bucket[/prefix]`` URI.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise NexusError(f"not an s3://bucket/prefix URI: {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def s3_client_from_env() -> Any:
    """A ``minio.Minio`` client for the endpoint and credentials in the environment.

    Raises:
        NexusError: the ``minio`` package is missing.
    """
    try:
        import urllib3
        from minio import Minio
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise NexusError("s3:// locations need the 'service' extra (minio)") from error
    endpoint = (
        os.environ.get("S3_ENDPOINT", "s3.amazonaws.com").removeprefix("http://").removeprefix("https://")
    )
    secure_default = "0" if endpoint.startswith(("127.", "localhost")) else "1"
    return Minio(
        endpoint,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=os.environ.get("S3_SECURE", secure_default) == "1",
        http_client=urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=120),
            retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]),
        ),
    )
