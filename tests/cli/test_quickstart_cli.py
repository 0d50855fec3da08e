from __future__ import annotations

import json

import pytest

from nexus.cli.main import main


@pytest.mark.slow
def test_quickstart_runs_every_step_and_writes_a_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    workdir = tmp_path / "qs"
    rc = main(["quickstart", "--workdir", str(workdir), "--images", "24", "--epochs", "1", "--imgsz", "64"])
    assert rc == 0
    summary = json.loads((workdir / "summary.json").read_text())
    assert set(summary["export"]) == {"onnx", "int8"}
    assert all((workdir / "export" / name).is_file() for name in ("model.onnx", "model-int8.onnx"))
    assert set(summary["evaluation"]["onnx"]) == {"mAP50", "mAP50-95"}
    assert summary["train"]["mlflow_run_id"]
    assert summary["prediction"]["image"].endswith((".jpg", ".png"))
    assert list(summary["seconds"]) == ["dataset", "train", "export", "evaluate", "predict"]
    assert (workdir / "eval" / "onnx" / "confusion_matrix.png").is_file()
    # the sample data's recipe: an optimizer step per 16 images, not Ultralytics' 64
    args = (workdir / "runs" / "quickstart" / "args.yaml").read_text()
    assert "\nnbs: 16\n" in args
    assert '"evaluation"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--imgsz", "100"], "imgsz=100 must be a multiple of 32"),
        (["--epochs", "0"], "epochs=0 must be at least 1"),
        (["--images", "1"], "images=1 must be at least 2"),
        (["--seed", "-1"], "seed=-1 must be 0 or more"),
        (["--model", "x.onnx"], "model 'x.onnx' is neither an architecture YAML"),
        (["--model", "missing.pt"], "missing.pt: file not found"),
    ],
)
def test_bad_options_are_refused_before_the_dataset_is_written(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    workdir = tmp_path / "qs"
    assert main(["quickstart", "--workdir", str(workdir), "--images", "8", *args]) == 2
    assert message in capsys.readouterr().err
    assert not workdir.exists()  # a dataset left there would be reused by the next quickstart
