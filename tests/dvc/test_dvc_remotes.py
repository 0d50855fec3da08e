"""Push the sample dataset from a fresh clone and pull it back: the default local-folder remote (no
setup) and an S3 remote on a real S3 server (SeaweedFS), configured in .dvc/config.local."""

from __future__ import annotations

import shutil
from pathlib import Path

from dvc_helpers import clone, dvc, git, same_files

from nexus.datasets.versioning import dvc_hash, read_dvc_file


def _checkout_sample(repo: Path, sample: Path) -> str:
    """Put the regenerated dataset where data.dvc expects it and into the clone's DVC cache."""
    shutil.copytree(sample, repo / "data" / "sample")
    assert "modified" not in dvc("status", "data.dvc", cwd=repo)  # only "not in cache"
    dvc("commit", "--force", "data.dvc", cwd=repo)  # same hash: data.dvc unchanged, the cache filled
    assert "Data and pipelines are up to date" in dvc("status", "data.dvc", cwd=repo)
    return str(read_dvc_file(repo / "data.dvc").md5)


def _wipe(repo: Path) -> None:
    shutil.rmtree(repo / "data" / "sample")
    shutil.rmtree(repo / ".dvc" / "cache")


def test_fresh_clone_pushes_to_and_pulls_from_the_default_local_remote(origin, sample, tmp_path):
    repo = clone(origin, tmp_path / "clone")
    assert dvc("remote", "default", cwd=repo).strip() == "local"
    md5 = _checkout_sample(repo, sample)
    dvc("push", cwd=repo)  # to <clone>/.nexus/dvc-remote: nothing to set up
    stored = repo / ".nexus" / "dvc-remote" / "files" / "md5"
    assert (stored / md5[:2] / md5[2:]).is_file()  # the .dir manifest
    _wipe(repo)
    dvc("pull", cwd=repo)
    assert same_files(sample, repo / "data" / "sample")
    assert dvc_hash(repo / "data" / "sample") == md5
    assert git("status", "--porcelain", cwd=repo) == ""  # data.dvc unchanged, everything else ignored


def test_s3_remote_on_a_real_s3_server(origin, tiny, s3_server, s3_client, tmp_path):
    bucket = "nexus-dvc"
    if not s3_client.bucket_exists(bucket):
        s3_client.make_bucket(bucket)
    repo = clone(origin, tmp_path / "clone")
    # What the README documents for MinIO / any S3: the remote in .dvc/config, secrets in config.local.
    dvc("remote", "add", "--local", "--default", "minio", f"s3://{bucket}/sample", cwd=repo)
    dvc("remote", "modify", "--local", "minio", "endpointurl", f"http://{s3_server.endpoint}", cwd=repo)
    dvc("remote", "modify", "--local", "minio", "access_key_id", s3_server.access_key, cwd=repo)
    dvc("remote", "modify", "--local", "minio", "secret_access_key", s3_server.secret_key, cwd=repo)
    shutil.copytree(tiny, repo / "data" / "sample")  # a smaller dataset: 33 objects to move
    dvc("commit", "--force", "data.dvc", cwd=repo)
    md5 = str(read_dvc_file(repo / "data.dvc").md5)
    assert md5 == dvc_hash(tiny)
    dvc("push", cwd=repo)
    keys = {o.object_name for o in s3_client.list_objects(bucket, prefix="sample/", recursive=True)}
    assert f"sample/files/md5/{md5[:2]}/{md5[2:]}" in keys
    assert 1 < len(keys) <= read_dvc_file(repo / "data.dvc").nfiles + 1  # files (deduplicated) + manifest
    _wipe(repo)
    dvc("pull", cwd=repo)
    assert same_files(tiny, repo / "data" / "sample")
    # The credentials stay in the git-ignored .dvc/config.local; only the new data.dvc shows.
    assert git("status", "--porcelain", cwd=repo).splitlines() == [" M data.dvc"]
    assert "secret_access_key" in (repo / ".dvc" / "config.local").read_text()
