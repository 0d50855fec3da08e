"""data.dvc is current (the deterministic sample regenerates to its hash), the DVC settings keep DVC
offline, dvc.yaml mirrors the pipeline, and the versioning helpers read and locate .dvc files."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
import yaml
from dvc_helpers import REPO, clone, git

from nexus.datasets.versioning import (
    dvc_hash,
    find_dvc_file,
    read_dvc_file,
    resolve_dvc_source,
    restore,
)
from nexus.errors import DatasetError


def test_data_dvc_records_the_regenerated_sample_dataset(sample):
    tracked = read_dvc_file(REPO / "data.dvc")
    assert tracked.path == REPO / "data" / "sample"
    assert dvc_hash(sample) == tracked.md5, (
        "data.dvc is stale or the synthesizer changed: regenerate data/sample "
        "(nexus data synth data/sample --images 360 --seed 0 --imgsz 160 --overwrite) "
        "and run `dvc commit -f data.dvc`"
    )
    files = [p for p in sample.rglob("*") if p.is_file()]
    assert tracked.nfiles == len(files)
    assert tracked.size == sum(p.stat().st_size for p in files)


def test_dvc_settings_keep_dvc_offline_with_a_local_default_remote():
    import configobj

    config = configobj.ConfigObj(str(REPO / ".dvc" / "config"))
    core = config["core"]
    assert (core["analytics"], core["check_update"], core["autostage"]) == ("false", "false", "false")
    assert core["remote"] == "local"
    assert config['remote "local"']["url"] == "../.nexus/dvc-remote"  # resolved against .dvc/
    assert core["site_cache_dir"].startswith(".nexus/")
    assert "**/labels/*.cache" in (REPO / ".dvcignore").read_text().splitlines()


def test_git_ignores_the_data_and_dvc_outputs_but_not_the_dvc_files(origin, tmp_path):
    repo = clone(origin, tmp_path / "clone")
    ignored = ["data/sample/dataset.yaml", ".nexus/dvc-remote/x", ".nexus/dvc/metrics.json", ".dvc/cache/x"]
    assert git("check-ignore", *ignored, cwd=repo).split() == ignored
    # DVC refuses a git-ignored dvc.lock, so it stays visible (and uncommitted: see the README).
    kept = ["data.dvc", "dvc.yaml", "params.yaml", "dvc.lock", ".dvc/config", ".dvcignore"]
    result = subprocess.run(["git", "check-ignore", *kept], cwd=repo, capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (1, "")


def test_dvc_yaml_stages_mirror_the_training_pipeline():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(stages) == ["train", "export", "evaluate"]
    for name, stage in stages.items():
        assert stage["cmd"].startswith("nexus "), name
        assert "data/sample" in stage["deps"]
        assert all(key.split(".")[0] in params for key in stage["params"])
    assert stages["export"]["deps"][0] == next(iter(stages["train"]["outs"][0]))
    assert stages["evaluate"]["deps"][0] == next(iter(stages["export"]["outs"][0]))
    assert list(stages["evaluate"]["metrics"][0]) == [".nexus/dvc/metrics.json"]
    assert params["train"]["epochs"] == 30 and params["train"]["imgsz"] == 160  # the real settings


def test_dvc_hash_of_a_file_is_its_md5_and_a_missing_path_is_an_error(tmp_path):
    file = tmp_path / "a.txt"
    file.write_bytes(b"nexus\n")
    assert dvc_hash(file) == hashlib.md5(b"nexus\n").hexdigest()
    with pytest.raises(DatasetError, match="no such file or folder"):
        dvc_hash(tmp_path / "missing")


def test_dvc_hash_follows_the_repository_dvcignore(origin, sample, tmp_path):
    repo = clone(origin, tmp_path / "clone")
    shutil.copytree(sample, repo / "data" / "sample")
    (repo / "data" / "sample" / "labels" / "train.cache").write_bytes(b"ultralytics label cache")
    assert dvc_hash(repo / "data" / "sample") == read_dvc_file(repo / "data.dvc").md5


def test_dvc_sources_resolve_to_their_dvc_files(origin, tmp_path):
    repo = clone(origin, tmp_path / "clone")
    data_dvc = repo / "data.dvc"
    assert find_dvc_file(repo / "data" / "sample") == data_dvc  # tracked from the parent folder
    assert find_dvc_file(data_dvc) == data_dvc
    assert resolve_dvc_source("dvc", cwd=repo / "data").dvc_file == data_dvc
    assert resolve_dvc_source("data/sample", cwd=repo).path == repo / "data" / "sample"
    (repo / "parts").mkdir()
    (repo / "parts.dvc").write_text("outs:\n- path: parts\n  md5: 0123.dir\n")
    assert find_dvc_file(repo / "parts") == repo / "parts.dvc"  # the sibling `dvc add` writes
    assert resolve_dvc_source(str(tmp_path / "plain-folder")) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("stages: {}\n", "exactly one path"),
        ("outs: [{path: a}, {path: b}]\n", "exactly one path"),
        (":\n- [", "not a readable"),
    ],
)
def test_malformed_dvc_files_are_dataset_errors(tmp_path, content, message):
    bad = tmp_path / "bad.dvc"
    bad.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_dvc_file(bad)
    with pytest.raises(DatasetError, match=r"no such \.dvc file"):
        read_dvc_file(tmp_path / "missing.dvc")


def test_restore_explains_data_that_is_in_no_cache_or_remote(origin, tmp_path):
    repo = clone(origin, tmp_path / "clone")  # fresh: nothing pulled, the default remote is empty
    with pytest.raises(DatasetError) as error:
        restore(repo / "data.dvc")
    message = str(error.value)
    assert "data/sample (3bcba34da6d55c2f85c05900e429c913.dir) is in neither the DVC cache nor" in message
    assert "default remote" in message and "dvc pull" in message
    assert "nexus data synth data/sample --images 360 --seed 0 --imgsz 160" in message
    with pytest.raises(DatasetError, match="not tracked by DVC"):
        restore(tmp_path / "untracked")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.dvc").write_text("outs:\n- path: x\n  md5: 0123.dir\n")
    with pytest.raises(DatasetError, match="not inside a DVC repository"):
        restore(outside / "x.dvc")


def test_restore_leaves_present_data_alone(origin, tmp_path):
    repo = clone(origin, tmp_path / "clone")
    (repo / "data" / "sample").mkdir(parents=True)
    assert restore(repo / "data" / "sample") == repo / "data" / "sample"
    assert not (repo / ".dvc" / "cache").exists()
