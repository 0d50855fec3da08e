"""Tiny real trainings (64 px, 8 train / 4 val images): results, MLflow, resume, weights, offline, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest
import torch

from nexus.errors import ModelLoadError, NexusError
from nexus.settings import NexusSettings
from nexus.training import TrainConfig, TrainResult, train_model
from nexus.training.tracking import RUN_ID_FILE, MlflowTracker
from nexus.training.ultralytics_env import cpu_count

TINY = {"imgsz": 64, "batch": 4, "workers": 0}
NO_PLOTS = {
    **TINY,
    "extra": {"plots": False},
}  # plots cost seconds; the first test and the offline one keep them


def _client(settings: NexusSettings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def _steps(settings: NexusSettings, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in _client(settings).get_metric_history(run_id, key))


@pytest.mark.slow
def test_detect_training_result_and_mlflow_run(
    detect_dataset: Path, settings: NexusSettings, no_network, capsys: pytest.CaptureFixture[str]
) -> None:
    config = TrainConfig(data=detect_dataset, epochs=2, **TINY)
    result = train_model(config, settings, progress=False)

    assert isinstance(result, TrainResult)
    assert result.run_dir == settings.home / "runs" / "train"
    assert result.best_weights == result.run_dir / "weights" / "best.pt" and result.best_weights.is_file()
    assert result.last_weights.is_file()
    assert result.task == "detect" and result.epochs_completed == 2
    assert result.names == {0: "rectangle", 1: "circle"}
    for key in ("metrics/mAP50(B)", "metrics/mAP50-95(B)", "metrics/precision(B)", "metrics/recall(B)"):
        assert 0.0 <= result.metrics[key] <= 1.0
    assert result.metrics["mAP50"] == result.metrics["metrics/mAP50(B)"]
    assert result.metrics["mAP50-95"] == result.metrics["metrics/mAP50-95(B)"]
    expected = NexusSettings.from_env().torch_threads or cpu_count()
    assert torch.get_num_threads() == expected  # Ultralytics' 1-thread default on 2 cores is undone
    assert "Epoch" not in capsys.readouterr().out  # progress=False: no log, no bars

    assert (result.run_dir / RUN_ID_FILE).read_text().strip() == result.mlflow_run_id
    run = _client(settings).get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    experiment = _client(settings).get_experiment(run.info.experiment_id)
    assert experiment.name == settings.mlflow_experiment
    params = run.data.params
    for key in ("data", "model", "task", "epochs", "imgsz", "batch", "device", "workers", "seed", "patience"):
        assert key in params, key
    assert params["epochs"] == "2" and params["dataset_yaml"] == str(detect_dataset / "dataset.yaml")
    assert len(params["dataset_sha256"]) == 64
    for key in (
        "train/box_loss",
        "train/cls_loss",
        "metrics/mAP50_B",
        "metrics/mAP50-95_B",
        "lr/pg0",
        "mAP50",
    ):
        assert _steps(settings, result.mlflow_run_id, key) == [1, 2], key
    assert "final/mAP50-95" in run.data.metrics
    artifacts = {a.path for a in _client(settings).list_artifacts(result.mlflow_run_id)}
    assert {"results.csv", "args.yaml", "weights", "plots"} <= artifacts
    weights = {a.path for a in _client(settings).list_artifacts(result.mlflow_run_id, "weights")}
    assert weights == {"weights/best.pt"}

    # A second training with the same name gets a fresh folder and a fresh MLflow run.
    again = train_model(TrainConfig(data=detect_dataset, epochs=1, **NO_PLOTS), settings, progress=False)
    assert again.run_dir.parent == result.run_dir.parent and again.run_dir.name.startswith("train")
    assert again.run_dir != result.run_dir and (result.run_dir / "weights" / "best.pt").is_file()
    assert again.mlflow_run_id != result.mlflow_run_id

    # Fine-tuning from user-supplied weights (the first run's best.pt).
    tuned = train_model(
        TrainConfig(data=detect_dataset, model=str(result.best_weights), epochs=1, name="tuned", **NO_PLOTS),
        settings,
        progress=False,
    )
    assert tuned.task == "detect" and tuned.best_weights.is_file()
    assert _client(settings).get_run(tuned.mlflow_run_id).data.params["model"] == str(result.best_weights)


def test_segment_training(segment_dataset: Path, settings: NexusSettings, no_network) -> None:
    result = train_model(
        TrainConfig(data=segment_dataset, model="yolov8n-seg.yaml", epochs=1, name="seg", **NO_PLOTS),
        settings,
        progress=False,
    )
    assert result.task == "segment" and result.epochs_completed == 1
    assert "metrics/mAP50-95(M)" in result.metrics and "mask_mAP50-95" in result.metrics
    assert _steps(settings, result.mlflow_run_id, "metrics/mAP50-95_M") == [1]


def test_segment_model_on_box_labels_is_refused(detect_dataset: Path, settings: NexusSettings) -> None:
    with pytest.raises(NexusError, match="detect labels"):
        train_model(TrainConfig(data=detect_dataset, model="yolov8n-seg.yaml", **TINY), settings)


def test_task_contradicting_the_model(detect_dataset: Path, settings: NexusSettings) -> None:
    with pytest.raises(NexusError, match=r"yolov8n-seg\.yaml"):
        train_model(TrainConfig(data=detect_dataset, task="segment", **TINY), settings)


def test_unknown_extra_argument(detect_dataset: Path, settings: NexusSettings) -> None:
    with pytest.raises(NexusError, match="'lr_zero'"):
        train_model(TrainConfig(data=detect_dataset, extra={"lr_zero": 0.1}, **TINY), settings)


def test_unknown_architecture(detect_dataset: Path, settings: NexusSettings, no_network) -> None:
    with pytest.raises(ModelLoadError, match="unknown architecture"):
        train_model(TrainConfig(data=detect_dataset, model="yolov99z.yaml", **TINY), settings)


def test_file_that_is_not_a_model(detect_dataset: Path, settings: NexusSettings, tmp_path: Path) -> None:
    fake = tmp_path / "x.pt"
    fake.write_text("these are not weights\n")
    with pytest.raises(ModelLoadError, match="not an Ultralytics YOLO checkpoint") as info:
        train_model(TrainConfig(data=detect_dataset, model=str(fake), **TINY), settings)
    assert "\n" not in str(info.value)


def test_resume_without_checkpoint(detect_dataset: Path, settings: NexusSettings) -> None:
    with pytest.raises(NexusError, match="nothing to resume"):
        train_model(TrainConfig(data=detect_dataset, resume=True, name="never-ran", **TINY), settings)


def test_guard_catches_ultralytics_font_download(settings: NexusSettings, no_network) -> None:
    """The network guard used above really sees Ultralytics' traps: a font missing from its config dir
    makes it ask GitHub (which YOLO_OFFLINE does not stop)."""
    from nexus.training.ultralytics_env import configure_ultralytics

    configure_ultralytics(settings)
    from ultralytics.utils.checks import check_font

    assert check_font("NexusMissingFont.ttf") is None
    assert no_network.attempts and "getaddrinfo" in no_network.attempts[0]
    no_network.attempts.clear()
    assert str(check_font("Arial.ttf")).endswith("Arial.ttf") and no_network.attempts == []


class _Interrupted(RuntimeError):
    """Stands for a crash or Ctrl-C in the middle of a training."""


@pytest.mark.slow
def test_resume_continues_the_same_mlflow_run(
    detect_dataset: Path, settings: NexusSettings, no_network, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ultralytics.utils.callbacks import base

    def crash_in_second_epoch(trainer) -> None:
        if trainer.epoch == 1:
            raise _Interrupted("simulated interruption at the start of epoch 2")

    # Every YOLO model copies Ultralytics' default callbacks, so this one reaches the next training.
    hooks = [*base.default_callbacks["on_train_epoch_start"], crash_in_second_epoch]
    monkeypatch.setitem(base.default_callbacks, "on_train_epoch_start", hooks)
    config = TrainConfig(data=detect_dataset, epochs=3, name="resumable", **NO_PLOTS)
    with pytest.raises(_Interrupted):
        train_model(config, settings, progress=False)
    run_dir = settings.home / "runs" / "resumable"
    run_id = (run_dir / RUN_ID_FILE).read_text().strip()
    assert (run_dir / "weights" / "last.pt").is_file()
    assert _client(settings).get_run(run_id).info.status == "FAILED"
    assert _steps(settings, run_id, "metrics/mAP50_B") == [1]
    monkeypatch.undo()

    result = train_model(
        TrainConfig(data=detect_dataset, epochs=3, name="resumable", resume=True, **NO_PLOTS), settings
    )
    assert result.run_dir == run_dir
    assert result.epochs_completed == 3
    assert result.mlflow_run_id == run_id
    run = _client(settings).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resume.resume"] == "True"
    for key in ("metrics/mAP50_B", "train/box_loss", "lr/pg0"):
        assert _steps(settings, run_id, key) == [1, 2, 3], key

    with pytest.raises(NexusError, match="already finished"):
        train_model(TrainConfig(data=detect_dataset, name="resumable", resume=True, **TINY), settings)


def test_tracker_callbacks_survive_cloudpickle(settings: NexusSettings) -> None:
    """Ultralytics ships callbacks to DDP workers with cloudpickle; the tracker must log from there."""
    from types import SimpleNamespace

    tracker = MlflowTracker.start(settings, run_name="pickled")
    callbacks = cloudpickle.loads(cloudpickle.dumps(tracker.callbacks()))
    trainer = SimpleNamespace(
        tloss=None,
        metrics={"metrics/mAP50(B)": 0.25},
        lr={"lr/pg0": 0.01},
        epoch_time=1.5,
        epoch=0,
        stop=True,
        save_dir=settings.home / "runs" / "pickled",
    )
    callbacks["on_pretrain_routine_end"](trainer)
    callbacks["on_fit_epoch_end"](trainer)
    callbacks["on_fit_epoch_end"](trainer)  # the final validation call after the last epoch is skipped
    tracker.finish()
    assert (settings.home / "runs" / "pickled" / RUN_ID_FILE).read_text().strip() == tracker.run_id
    history = _client(settings).get_metric_history(tracker.run_id, "mAP50")
    assert [(m.step, m.value) for m in history] == [(1, 0.25)]


_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    from pathlib import Path

    attempts = []

    def is_loopback(host):
        return host in (None, "", "localhost") or str(host).startswith("127.") or host == "::1"

    def audit(event, args):
        if event in ("socket.getaddrinfo", "socket.gethostbyname"):
            host = args[0]
        elif event in ("socket.connect", "socket.sendto"):
            host = args[1][0] if isinstance(args[1], tuple) else None
        else:
            return
        if not is_loopback(host):
            attempts.append(f"{event} {args!r}"[:200])

    sys.addaudithook(audit)

    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if isinstance(address, tuple) and not is_loopback(address[0]):
            attempts.append(f"connect {address!r}")
            raise OSError("network access blocked by the test")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if not is_loopback(host):
            attempts.append(f"getaddrinfo {host!r}")
            raise OSError("network access blocked by the test")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

    from nexus.settings import NexusSettings
    from nexus.training import TrainConfig, train_model

    data, home, mlflow_uri = sys.argv[1:4]
    settings = NexusSettings(home=Path(home), mlflow_tracking_uri=mlflow_uri)
    config = TrainConfig(data=Path(data), epochs=1, imgsz=64, batch=4, extra={"plots": True})
    result = train_model(config, settings, progress=True)
    seen = list(attempts)
    try:  # the guard itself must see an attempt
        socket.getaddrinfo("example.com", 443)
    except OSError:
        pass
    probe_seen = any("example.com" in a for a in attempts)
    print(json.dumps({"attempts": seen, "probe_seen": probe_seen, "best": str(result.best_weights)}))
    """
)


@pytest.mark.slow
def test_training_makes_no_network_access_outside_pytest(
    detect_dataset: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    """A fresh interpreter (so Ultralytics does not see pytest and keeps its online code paths) trains
    with plots on; every DNS lookup and connect is audited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "YOLO_", "NEXUS_"))}
    home = tmp_path / "home"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _OFFLINE_SCRIPT,
            str(detect_dataset),
            str(home),
            mlflow_uri,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["probe_seen"], "the audit hook did not work"
    assert report["attempts"] == []
    assert Path(report["best"]).is_file()
    assert (home / "ultralytics" / "Ultralytics" / "settings.json").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP needs at least 2 CUDA devices")
def test_ddp_on_two_gpus(detect_dataset: Path, settings: NexusSettings, no_network) -> None:
    result = train_model(
        TrainConfig(data=detect_dataset, epochs=2, imgsz=64, batch=8, device="0,1", name="ddp"),
        settings,
        progress=False,
    )
    assert result.epochs_completed == 2 and result.best_weights.is_file()
    assert "mAP50" in result.metrics
    assert _steps(settings, result.mlflow_run_id, "metrics/mAP50_B") == [1, 2]
