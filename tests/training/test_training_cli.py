"""``nexus train``: summary, JSON, and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from nexus.cli.main import main


@pytest.fixture
def cli_env(tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NEXUS_HOME", str(home))
    monkeypatch.setenv("NEXUS_MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("NEXUS_MLFLOW_EXPERIMENT", "training-cli-tests")
    return home


TINY_ARGS = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu", "--no-plots"]


def test_train_json(
    detect_dataset: Path, cli_env: Path, no_network, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["train", "--data", str(detect_dataset), "--model", "yolov8n.yaml", *TINY_ARGS, "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    payload = json.loads(captured.out)  # stdout holds only the JSON; the training log went to stderr
    assert payload["run_dir"] == str(cli_env / "runs" / "train")
    assert Path(payload["best_weights"]).is_file()
    assert payload["task"] == "detect" and payload["epochs_completed"] == 1
    assert {"mAP50", "mAP50-95", "metrics/mAP50(B)"} <= set(payload["metrics"])
    assert payload["mlflow_run_id"] and payload["names"] == {"0": "rectangle", "1": "circle"}
    assert "Epoch" in captured.err
    # the sample data's recipe by default: an optimizer step per 16 images
    assert "\nnbs: 16\n" in (cli_env / "runs" / "train" / "args.yaml").read_text()


def test_train_summary(
    detect_dataset: Path, cli_env: Path, no_network, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["train", "--data", str(detect_dataset / "dataset.yaml"), *TINY_ARGS, "--name", "cli", "--quiet",
         "--nominal-batch", "64"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert lines["run dir"].strip() == str(cli_env / "runs" / "cli")
    assert lines["best weights"].strip().endswith("best.pt")
    assert float(lines["mAP50"]) >= 0.0 and float(lines["mAP50-95"]) >= 0.0
    assert len(lines["MLflow run"].split()[0]) == 32
    assert "\nnbs: 64\n" in (cli_env / "runs" / "cli" / "args.yaml").read_text()


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_dataset_dir(cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "nope"), *TINY_ARGS]) == 2
    assert "dataset not found" in _error_line(capsys)


def test_yaml_without_names(cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump({"train": "images", "val": "images"}))
    assert main(["train", "--data", str(tmp_path), *TINY_ARGS]) == 2
    assert "lacks names" in _error_line(capsys)


def test_weights_that_do_not_exist(
    detect_dataset: Path, cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "best.pt"
    assert main(["train", "--data", str(detect_dataset), "--model", str(missing), *TINY_ARGS]) == 2
    line = _error_line(capsys)
    assert str(missing) in line and "never downloads" in line


def test_text_file_named_pt(
    detect_dataset: Path, cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_network
) -> None:
    fake = tmp_path / "x.pt"
    fake.write_text("not a model\n")
    assert main(["train", "--data", str(detect_dataset), "--model", str(fake), *TINY_ARGS, "--quiet"]) == 2
    assert "not an Ultralytics YOLO checkpoint" in _error_line(capsys)


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu", "is not a device"), ("cpu,cpu", "several CPU devices"), ("0,0", "twice")],
)
def test_bad_device(
    detect_dataset: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], device: str, message: str
) -> None:
    assert main(["train", "--data", str(detect_dataset), "--device", device]) == 2
    assert message in _error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_device_without_cuda(
    detect_dataset: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(detect_dataset), "--device", "0"]) == 2
    assert "pass --device cpu" in _error_line(capsys)


def test_resume_of_unknown_run(
    detect_dataset: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(detect_dataset), "--resume", "--name", "ghost"]) == 2
    assert "nothing to resume" in _error_line(capsys)


@pytest.mark.parametrize("value", ["0", "-16"])
def test_bad_nominal_batch(
    detect_dataset: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert main(["train", "--data", str(detect_dataset), *TINY_ARGS, "--nominal-batch", value]) == 2
    assert f"--nominal-batch must be at least 1 image per optimizer step, got {value}" in _error_line(capsys)
    assert not (cli_env / "runs").exists()
