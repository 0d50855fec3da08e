"""The ``drift`` KFP component: it compiles into a pipeline and runs through ``kfp.local``.

No ``from __future__ import annotations`` here: KFP reads the pipeline's annotations as types.
"""

import json
import warnings

import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset

from components.drift import drift


def _pipeline(reference: str, current: str):
    @dsl.pipeline(name="drift-check")
    def drift_check() -> bool:
        imported = dsl.importer(artifact_uri=reference, artifact_class=Dataset, reimport=False)
        return drift(reference=imported.output, current_path=current).outputs["Output"]

    return drift_check


def test_component_compiles_with_its_interface(tmp_path):
    target = tmp_path / "drift.yaml"
    compiler.Compiler().compile(_pipeline("/data/reference", "/data/new"), str(target))
    spec = yaml.safe_load(target.read_text())
    component = spec["components"]["comp-drift"]
    assert set(component["inputDefinitions"]["artifacts"]) == {"reference"}
    parameters = component["inputDefinitions"]["parameters"]
    assert set(parameters) == {"current_path", "model_path", "split", "drift_share"}
    assert (
        parameters["model_path"]["defaultValue"] == "" and parameters["drift_share"]["defaultValue"] == 0.25
    )
    outputs = component["outputDefinitions"]
    assert set(outputs["artifacts"]) == {"report", "summary", "metrics"}
    assert outputs["parameters"]["Output"]["parameterType"] == "BOOLEAN"


def test_component_runs_locally_and_returns_the_flag(drift_data, tmp_path, monkeypatch):
    from kfp import local

    root = tmp_path / "runs"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # each task's subprocess leaves a temp dir
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    pipeline = _pipeline(str(drift_data["reference"]), str(drift_data["dark"]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        assert pipeline().output is True
    (run,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("drift-check")]
    summary = json.loads((run / "drift" / "summary").read_text())
    assert summary["drifted"] is True and "brightness" in summary["drifted_columns"]
    assert summary["html_path"] == str(run / "drift" / "report")
    assert "Dataset Drift is detected" in (run / "drift" / "report").read_text()
    executor = json.loads((run / "drift" / "executor_output.json").read_text())
    (metrics,) = executor["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"]["drifted"] == 1.0 and metrics["metadata"]["drifted_columns"] >= 5
    assert metrics["metadata"]["current_images"] == 30.0
    assert not list(scratch.glob("nexus-drift-*")), "the component's scratch folder should be removed"
