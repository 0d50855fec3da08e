"""``dvc repro`` runs dvc.yaml's train -> export -> evaluate stages (tiny settings) and then has
nothing left to do."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from dvc_helpers import REPO, clone, dvc


@pytest.mark.slow
def test_repro_trains_exports_evaluates_then_is_up_to_date(origin, tiny, tmp_path, monkeypatch):
    repo = clone(origin, tmp_path / "clone")
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    monkeypatch.setenv("NEXUS_HOME", str(repo / ".nexus"))  # the MLflow store of the train stage
    shutil.copytree(tiny, repo / "data" / "sample")
    dvc("commit", "--force", "data.dvc", cwd=repo)  # this clone versions the tiny dataset instead
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(epochs=1, imgsz=64, batch=8)
    params["export"].update(calibration_images=8)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))

    first = dvc("repro", cwd=repo)
    for stage in ("train", "export", "evaluate"):
        assert f"Running stage '{stage}'" in first
    outputs = repo / ".nexus" / "dvc"
    assert (outputs / "train" / "weights" / "best.pt").is_file()
    assert {"model.onnx", "model-int8.onnx"} <= {p.name for p in (outputs / "export").iterdir()}
    metrics = json.loads((outputs / "metrics.json").read_text())
    assert set(metrics["box"]["coco"]["stats"]) >= {"AP", "AP50"}
    assert metrics["images"] == 3  # the tiny dataset's val split
    assert '"AP50"' in dvc("metrics", "show", "--json", cwd=repo)

    # Ultralytics left labels/*.cache in data/sample: .dvcignore keeps the data (and the stages) unchanged.
    assert list((repo / "data" / "sample" / "labels").glob("*.cache"))
    second = dvc("repro", cwd=repo)
    assert "Running stage" not in second
    assert "Data and pipelines are up to date" in second
    assert (repo / "dvc.lock").is_file()
