"""Fixtures of the DVC tests: a git repository holding the checkout's DVC files (clone it for a fresh
clone), the regenerated sample dataset, and a real S3 server. Nothing here touches the checkout's
.dvc/cache, data/ or .nexus/."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_helpers import DVC_FILES, GIT_ENV, REPO, git

# The S3 server helpers live with the service tests (a folder without __init__.py, like this one).
sys.path.append(str(REPO / "tests" / "service"))


@pytest.fixture(autouse=True, scope="session")
def dvc_isolation(tmp_path_factory) -> Iterator[None]:
    """DVC without analytics, its site cache and global/system config in a scratch folder; git with an
    identity for the scratch repositories."""
    scratch = tmp_path_factory.mktemp("dvc-env")
    values = {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(scratch / "site-cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(scratch / "global"),
        "DVC_SYSTEM_CONFIG_DIR": str(scratch / "system"),
        **GIT_ENV,
    }
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    yield
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def origin(tmp_path_factory) -> Path:
    """A git repository holding the checkout's DVC files (working-tree versions), committed."""
    root = tmp_path_factory.mktemp("origin")
    git("init", "-q", cwd=root)
    for name in DVC_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, root / name)
    git("add", *DVC_FILES, cwd=root)
    git("commit", "-q", "-m", "DVC files", cwd=root)
    return root


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """The sample dataset regenerated with the quickstart defaults (360 images, 160 px, seed 0)."""
    from nexus.datasets import SynthConfig, synthesize_dataset

    target = tmp_path_factory.mktemp("regenerated") / "sample"
    synthesize_dataset(target, SynthConfig(images=360, seed=0, imgsz=160))
    return target


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """A 16-image, 64 px dataset (33 files): quick to push, pull and train on."""
    from nexus.datasets import SynthConfig, synthesize_dataset

    target = tmp_path_factory.mktemp("tiny") / "sample"
    synthesize_dataset(target, SynthConfig(images=16, seed=0, imgsz=64))
    return target


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS S3 server (``weed mini``, credentials enforced) for the DVC tests."""
    from service_servers import weed_s3_server

    with weed_s3_server(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_client(s3_server):
    from minio import Minio

    return Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
