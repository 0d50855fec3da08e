"""``nexus tune``: exit codes and output."""

from __future__ import annotations

import json

import pytest

from nexus.cli.main import main

TINY = ["--imgsz", "64", "--batch", "8"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "-1"], "error: trials=-1 must be >= 0"),
        (["--epochs", "0"], "error: epochs=0 must be at least 1"),
        (["--imgsz", "65"], "error: imgsz=65 must be a multiple of 32"),
        (["--metric", "f1"], "error: metric='f1' is not known"),
        (["--pruner", "asha"], "error: pruner='asha' is not known"),
        (["--space", "{lr0: 1"], "error: --space is not JSON"),
        (["--space", '{"lr0": [0.1, 0.01]}'], "error: search_space['lr0']: low=0.1 must be below high=0.01"),
        (["--space", '{"imgsz": [32, 64]}'], "error: search_space['imgsz']: 'imgsz' cannot be tuned"),
        (["--device", "0,1"], "a trial trains on one device"),
        (["--study-name", "../x"], "error: study_name='../x' must be one folder name"),
    ],
)
def test_bad_input_exits_2_with_the_field_named(tune_dataset, settings, capsys, args, message):
    assert main(["tune", "--data", str(tune_dataset), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert not settings.home.exists()


def test_missing_dataset_and_missing_option_exit_2(tmp_path, settings, capsys):
    assert main(["tune", "--data", str(tmp_path / "nope"), "--trials", "1"]) == 2
    assert "dataset not found" in capsys.readouterr().err
    assert main(["tune", "--trials", "1"]) == 2
    assert "--data" in capsys.readouterr().err


def test_zero_trials_prints_the_defaults_as_json(tune_dataset, settings, capsys):
    assert main(["tune", "--data", str(tune_dataset), "--trials", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trials_run"] == 0 and result["mlflow_parent_run_id"] is None
    assert result["best_params"]["lr0"] == 0.01 and result["best_params"]["mosaic"] == 1.0
    assert not settings.home.exists()


@pytest.mark.slow
def test_one_trial_prints_the_best_params(tune_dataset, settings, capsys, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr0": [0.001, 0.1, "log"], "fliplr": [0.0, 1.0]}))
    args = [
        "tune",
        "--data",
        str(tune_dataset),
        "--trials",
        "1",
        "--epochs",
        "1",
        "--space",
        str(space),
        *TINY,
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 complete, 0 pruned, 0 failed (1 run now)" in out
    assert "best params:" in out and "  lr0:" in out and "  fliplr:" in out and "momentum" not in out
    assert (settings.home / "tuning" / "optuna.journal").is_file()
    assert (settings.home / "runs" / "tune" / "tune" / "trial-0" / "results.csv").is_file()
