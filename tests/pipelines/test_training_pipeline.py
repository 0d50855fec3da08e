"""The training pipeline: compiled IR kept current, local kfp runs through the gate both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nexus.cli.main import main
from nexus.pipelines import PIPELINES, compile_pipeline, compiled_path

TINY = {"synth_images": 24, "imgsz": 64, "epochs": 1, "batch": 8}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_checked_in_ir_yaml_is_current(name, tmp_path):
    fresh = compile_pipeline(name, tmp_path / f"{name}.yaml")
    assert fresh.read_text() == compiled_path(name).read_text(), (
        f"pipelines/{name}.yaml is stale: run `nexus pipeline compile {name}`"
    )
    spec = yaml.safe_load(fresh.read_text())
    tasks = set(spec["root"]["dag"]["tasks"])
    assert {"ingest", "train", "export", "evaluate", "condition-1"} <= tasks


def run_dir(root: Path) -> Path:
    (only,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("training-")]
    return only


@pytest.mark.slow
@pytest.mark.parametrize(("min_map50", "accepted"), [(0.0, True), (1.01, False)])
def test_local_run_passes_or_stops_at_the_map_gate(tmp_path, monkeypatch, capsys, min_map50, accepted):
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    root = tmp_path / "runs"
    args = [f"--arg={key}={value}" for key, value in {**TINY, "min_map50": min_map50}.items()]
    assert main(["pipeline", "run", "training", "--root", str(root), *args]) == 0
    run = run_dir(root)
    assert (run / "export" / "onnx_model" / "model-int8.onnx").is_file()
    assert "<table>" in (run / "evaluate" / "report").read_text()
    assert (run / "accept" / "accepted" / "model.onnx").is_file() is accepted


def test_missing_dataset_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    rc = main(
        ["pipeline", "run", "training", "--root", str(tmp_path / "r"), f"--arg=source={tmp_path / 'nope'}"]
    )
    assert rc == 2
    assert "pipeline 'training' failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["run", "nope"], "unknown pipeline"), (["run", "training", "--arg", "x"], "name=value")],
)
def test_bad_cli_input(args, message, capsys):
    assert main(["pipeline", *args]) == 2
    assert message in capsys.readouterr().err
