"""TrainConfig validation, device parsing, dataset checks and Ultralytics settings: no training here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from nexus.errors import DatasetError, ModelLoadError, NexusError
from nexus.settings import NexusSettings
from nexus.training import TrainConfig, TrainResult, train_model
from nexus.training.config import parse_device
from nexus.training.dataset_spec import dataset_fingerprint, load_dataset_spec
from nexus.training.trainer import check_devices


def test_dataset_folder_resolves_to_its_yaml(detect_dataset: Path) -> None:
    config = TrainConfig(data=detect_dataset)
    assert config.data == detect_dataset / "dataset.yaml"
    assert TrainConfig(data=str(detect_dataset / "dataset.yaml")).data == config.data  # type: ignore[arg-type]


def test_missing_dataset_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset not found"):
        TrainConfig(data=tmp_path / "nope")


@pytest.mark.parametrize("missing", ["names", "train", "val"])
def test_yaml_without_required_key(tmp_path: Path, detect_dataset: Path, missing: str) -> None:
    spec = yaml.safe_load((detect_dataset / "dataset.yaml").read_text())
    spec = {k: (f"{detect_dataset}/{v}" if k in {"train", "val"} else v) for k, v in spec.items()}
    del spec[missing]
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DatasetError, match=f"lacks {missing}"):
        TrainConfig(data=tmp_path)


def test_split_folder_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "dataset.yaml").write_text(
        yaml.safe_dump({"train": "images/train", "val": "x", "names": ["a"]})
    )
    with pytest.raises(DatasetError, match="'train: images/train' does not exist"):
        TrainConfig(data=tmp_path)


def test_missing_weights_rejected_before_ultralytics(detect_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="never downloads"):
        TrainConfig(data=detect_dataset, model=str(tmp_path / "yolov8n.pt"))
    with pytest.raises(ModelLoadError, match="never downloads"):
        TrainConfig(data=detect_dataset, model="yolo11n.pt")  # a name Ultralytics would download


@pytest.mark.parametrize("model", ["yolov8n", "model.onnx", ""])
def test_model_must_be_yaml_or_pt(detect_dataset: Path, model: str) -> None:
    with pytest.raises(ModelLoadError, match="neither an architecture YAML"):
        TrainConfig(data=detect_dataset, model=model)


def test_own_architecture_yaml_path_must_exist(detect_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="file not found"):
        TrainConfig(data=detect_dataset, model=str(tmp_path / "mine.yaml"))


def test_segment_task_inferred_from_model_name(detect_dataset: Path) -> None:
    assert TrainConfig(data=detect_dataset, model="yolov8n-seg.yaml").task == "segment"
    assert TrainConfig(data=detect_dataset, model="yolov8n.yaml").task is None


@pytest.mark.parametrize(
    ("device", "expected"),
    [("cpu", "cpu"), (" CPU ", "cpu"), ("0", "0"), ("0,1", "0,1"), ("cuda", "0"), ("cuda:1,2", "1,2")],
)
def test_device_strings(device: str, expected: str) -> None:
    assert parse_device(device)[0] == expected


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cpu,cpu", "several CPU devices"),
        ("gpu", "is not a device"),
        ("", "is not a device"),
        ("0,0", "twice"),
        ("0;1", "is not a device"),
    ],
)
def test_bad_device_strings(detect_dataset: Path, device: str, message: str) -> None:
    with pytest.raises(NexusError, match=message):
        TrainConfig(data=detect_dataset, device=device)


def test_gpu_requested_without_cuda(detect_dataset: Path, settings: NexusSettings) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for device in ("0", "0,1"):
        with pytest.raises(NexusError, match="pass --device cpu"):
            train_model(TrainConfig(data=detect_dataset, device=device), settings)


def test_ddp_needs_valid_indices() -> None:
    assert check_devices("cpu") == []
    import torch

    count = torch.cuda.device_count()
    with pytest.raises(NexusError, match="CUDA"):
        check_devices(f"0,{count + 3}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs=0"),
        ({"imgsz": 100}, "multiple of 32"),
        ({"batch": 0}, "batch=0"),
        ({"name": "../x"}, "one folder name"),
        ({"task": "pose"}, "task='pose'"),
        ({"extra": {"epochs": 3}}, "TrainConfig controls"),
        ({"device": "0,1", "batch": 5}, "multiple of the 2 GPUs"),
        ({"device": "0", "extra": {"amp": True}}, "bf16"),
        ({"imgsz": 320_000}, "imgsz=320000 must be at most 4096"),
        ({"extra": {"mosaic": 5}}, r"extra\['mosaic'\]: 5 leaves the valid values of mosaic"),
        ({"extra": {"lr_zero": 0.1}}, "'lr_zero' is not an Ultralytics train argument"),
        ({"extra": {"optimizer": "Adamm"}}, "'Adamm' is not an Ultralytics optimizer"),
        ({"extra": {"lr0": float("nan")}}, "must be a finite number"),
    ],
)
def test_field_validation(detect_dataset: Path, changes: dict, message: str) -> None:
    with pytest.raises(NexusError, match=message):
        TrainConfig(data=detect_dataset, **changes)


def test_params_are_flat_strings(detect_dataset: Path) -> None:
    params = TrainConfig(data=detect_dataset, extra={"lr0": 0.02}).params()
    assert params["epochs"] == "30"
    assert params["extra.lr0"] == "0.02"
    assert params["project"] == ""
    assert params["data"] == str(detect_dataset / "dataset.yaml")


def test_result_json_view(tmp_path: Path) -> None:
    result = TrainResult(
        tmp_path, tmp_path / "b.pt", tmp_path / "l.pt", {"mAP50": 0.5}, None, {0: "a"}, "detect", 2
    )
    assert json.loads(json.dumps(result.to_dict()))["names"] == {"0": "a"}
    with pytest.raises(NexusError):
        TrainResult(tmp_path, tmp_path, tmp_path, {}, None, {}, "classify", 1)


def test_fingerprint_follows_label_content(tmp_path: Path, detect_dataset: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(detect_dataset, copy, ignore=shutil.ignore_patterns("*.cache"))
    first, images = dataset_fingerprint(load_dataset_spec(copy))
    assert images == 12
    assert dataset_fingerprint(load_dataset_spec(copy))[0] == first
    label = next((copy / "labels" / "val").glob("*.txt"))
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
    assert dataset_fingerprint(load_dataset_spec(copy))[0] != first


def test_ultralytics_settings_stay_in_home(settings: NexusSettings) -> None:
    from nexus.training.ultralytics_env import configure_ultralytics, cpu_count

    configure_ultralytics(settings)
    import ultralytics.utils as ul_utils
    import ultralytics.utils.torch_utils as ul_torch_utils

    config_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    assert Path(ul_utils.USER_CONFIG_DIR).is_relative_to(config_dir)
    assert not Path(ul_utils.USER_CONFIG_DIR).is_relative_to(Path.home() / ".config")
    assert (Path(ul_utils.USER_CONFIG_DIR) / "Arial.ttf").is_file()
    saved = json.loads((Path(ul_utils.USER_CONFIG_DIR) / "settings.json").read_text())
    for key in ("mlflow", "wandb", "clearml", "comet", "dvc", "tensorboard", "raytune", "sync"):
        assert saved[key] is False, key
        assert ul_utils.SETTINGS[key] is False, key
    assert saved["runs_dir"] == str(settings.home / "runs")
    assert saved["weights_dir"] == str(settings.home / "weights")
    assert saved["datasets_dir"] == str(settings.home / "datasets")
    threads = ul_torch_utils.NUM_THREADS
    assert threads == (settings.torch_threads or cpu_count())


@pytest.mark.parametrize(
    ("extra", "nbs"),
    [({}, 16), ({"nbs": 64}, 64), ({"nbs": 8, "lr0": 0.01}, 8)],
    ids=["default", "ultralytics-recipe", "chosen"],
)
def test_gradients_accumulate_to_16_images_unless_extra_sets_nbs(
    detect_dataset: Path, tmp_path: Path, extra: dict, nbs: int
) -> None:
    from nexus.training.trainer import _train_kwargs

    kwargs = _train_kwargs(TrainConfig(data=detect_dataset, extra=extra), tmp_path)
    assert kwargs["nbs"] == nbs and kwargs["batch"] == 16
