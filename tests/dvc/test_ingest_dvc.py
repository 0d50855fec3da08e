"""The ``ingest`` component (through ``kfp.local``) on DVC-tracked sources whose data is missing, on an
``s3://`` prefix, and on a .dvc file whose data is nowhere; the Dataset carries its DVC hash."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from dvc_helpers import clone, dvc, git

from components.ingest import ingest
from nexus.datasets.versioning import dvc_hash


@pytest.fixture(scope="module")
def pushed(origin, tiny, tmp_path_factory) -> tuple[Path, Path]:
    """A clone that versioned the tiny dataset, committed data.dvc and pushed the data to a shared
    remote folder; returns (that clone, the remote folder)."""
    root = tmp_path_factory.mktemp("pushed")
    remote = root / "remote"
    repo = clone(origin, root / "author")
    dvc("remote", "modify", "--local", "local", "url", str(remote), cwd=repo)
    shutil.copytree(tiny, repo / "data" / "sample")
    dvc("commit", "--force", "data.dvc", cwd=repo)
    git("commit", "-q", "-am", "tiny dataset", cwd=repo)
    dvc("push", cwd=repo)
    return repo, remote


@pytest.fixture
def fresh(pushed, tmp_path) -> Path:
    """A fresh clone of the author's repository, its default remote pointed at the shared folder."""
    author, remote = pushed
    repo = clone(author, tmp_path / "fresh")
    dvc("remote", "modify", "--local", "local", "url", str(remote), cwd=repo)
    assert not (repo / "data").exists()
    return repo


@pytest.fixture
def run_local(tmp_path, monkeypatch):
    """Components run by ``kfp.local`` in this environment, artifacts under ``tmp_path``."""
    from kfp import local

    scratch = tmp_path / "kfp-tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))

    def run(**arguments):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            return ingest(**arguments)

    return run


def test_ingest_pulls_a_missing_dvc_tracked_folder_and_tags_its_hash(fresh, tiny, run_local):
    task = run_local(source=str(fresh / "data" / "sample"))
    dataset = task.outputs["dataset"]
    assert dataset.metadata["dvc_hash"] == dvc_hash(tiny) == dataset.metadata["dvc_recorded_hash"]
    assert dataset.metadata["dvc_file"] == str(fresh / "data.dvc")
    assert dvc_hash(fresh / "data" / "sample") == dvc_hash(tiny)  # restored in the workspace too
    assert task.outputs["metrics"].metadata == {"images_train": 13, "images_val": 3, "classes": 3}
    report = Path(task.outputs["report"].path).read_text()
    assert dvc_hash(tiny) in report and "<table>" in report


def test_ingest_dvc_literal_checks_out_the_sample_from_the_cache(fresh, tiny, run_local, monkeypatch):
    dvc("pull", cwd=fresh)
    shutil.rmtree(fresh / "data" / "sample")  # gone from the workspace, still in .dvc/cache
    dvc("remote", "modify", "--local", "local", "url", str(fresh / "no-remote"), cwd=fresh)
    monkeypatch.chdir(fresh)
    task = run_local(source="dvc")
    assert task.outputs["dataset"].metadata["dvc_hash"] == dvc_hash(tiny)
    assert (fresh / "data" / "sample" / "dataset.yaml").is_file()


def test_ingest_downloads_an_s3_prefix(tiny, s3_server, s3_client, run_local, monkeypatch):
    bucket = "nexus-datasets"
    if not s3_client.bucket_exists(bucket):
        s3_client.make_bucket(bucket)
    for file in (p for p in tiny.rglob("*") if p.is_file()):
        s3_client.fput_object(bucket, f"tiny/v1/{file.relative_to(tiny)}", str(file))
    monkeypatch.setenv("S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    task = run_local(source=f"s3://{bucket}/tiny/v1")
    assert task.outputs["dataset"].metadata["dvc_hash"] == dvc_hash(tiny)
    assert task.outputs["dataset"].metadata["source"] == f"s3://{bucket}/tiny/v1"


def test_ingest_of_data_in_no_remote_fails_with_a_clear_message(origin, tmp_path, run_local, capfd):
    repo = clone(origin, tmp_path / "empty")  # its default remote has nothing
    with pytest.raises(RuntimeError, match="FAILURE"):
        run_local(source=str(repo / "data.dvc"))
    log = capfd.readouterr()
    assert "DatasetError" in log.out + log.err
    assert "is in neither the DVC cache nor the default remote" in log.out + log.err
