"""``train_model``: one offline Ultralytics YOLO training, tracked in MLflow, resumable."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nexus.errors import DatasetError, ModelLoadError, NexusError
from nexus.settings import NexusSettings
from nexus.training.config import TrainConfig, TrainResult, model_kind, parse_device
from nexus.training.dataset_spec import TASKS, DatasetSpec, dataset_fingerprint, load_dataset_spec
from nexus.training.tracking import MlflowTracker, read_run_id, with_aliases
from nexus.training.ultralytics_env import configure_ultralytics, cpu_count, ultralytics_verbosity

# Images per optimizer step (Ultralytics' nbs; smaller batches accumulate gradients up to it). Ultralytics'
# 64 leaves a few hundred images too few steps: the sample data reached mAP50 0.81 after 30 epochs, 0.98
# with 16. extra={"nbs": 64} restores Ultralytics' recipe.
NOMINAL_BATCH = 16
# Arguments a resumed training may change; Ultralytics takes every other one from the checkpoint.
_RESUME_OVERRIDES = ("device", "workers")


def check_devices(device: str) -> list[int]:
    """Check that the CUDA devices in ``device`` exist here (and that DDP can start); return them.

    Example:
        >>> check_devices("cpu")
        []
    """
    _, indices = parse_device(device)
    if not indices:
        return indices
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise NexusError(
            f"device={device!r} needs CUDA, but torch sees no CUDA device on this machine; pass --device cpu"
        )
    missing = [i for i in indices if i >= available]
    if missing:
        raise NexusError(
            f"device={device!r}: CUDA device {missing[0]} does not exist; this machine has {available} "
            f"(indices 0..{available - 1})"
        )
    if len(indices) > 1 and importlib.util.find_spec("cloudpickle") is None:
        raise NexusError("multi-GPU DDP needs the cloudpickle package; pip install cloudpickle")
    return indices


def _load_yolo(model: str, *, weights: bool) -> Any:
    from ultralytics import YOLO

    try:
        return YOLO(model)
    except FileNotFoundError as error:
        if weights:
            raise ModelLoadError(f"cannot read the weights file ({error})", path=model) from error
        raise ModelLoadError(
            f"unknown architecture {model!r}: pass a YAML Ultralytics ships (yolov8n.yaml, yolov8n-seg.yaml, "
            "yolo11n.yaml, ...) or the path of your own architecture YAML"
        ) from error
    except Exception as error:
        what = "not an Ultralytics YOLO checkpoint" if weights else "not a valid architecture YAML"
        detail = (str(error).strip().splitlines() or [""])[0].removeprefix("ERROR ❌️").strip()
        raise ModelLoadError(f"{what} ({type(error).__name__}: {detail})", path=model) from error


def _resolve_task(config: TrainConfig, model_task: str, spec: DatasetSpec, model: str) -> str:
    if model_task not in TASKS:
        raise ModelLoadError(
            f"this is a {model_task} model; Nexus trains {' or '.join(TASKS)} models", path=model
        )
    if config.task is not None and config.task != model_task:
        hint = "a -seg architecture such as yolov8n-seg.yaml" if config.task == "segment" else "yolov8n.yaml"
        raise NexusError(f"model {model} is a {model_task} model but task={config.task!r}; use {hint}")
    if model_task == "segment" and spec.task == "detect":
        raise DatasetError(
            "the dataset has detect labels (boxes) but the model segments; pass a detect model such as "
            "yolov8n.yaml or a dataset with polygon labels",
            path=spec.yaml_path,
        )
    return model_task


def _check_extra(extra: dict[str, Any]) -> None:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    unknown = sorted(set(extra) - set(DEFAULT_CFG_DICT))
    if unknown:
        raise NexusError(
            f"extra has {', '.join(map(repr, unknown))}, which Ultralytics does not know as a train "
            "argument; see https://docs.ultralytics.com/modes/train/#train-settings"
        )


def _resume_checkpoint(config: TrainConfig, project: Path) -> tuple[Path, Path]:
    run_dir = project / config.name
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise NexusError(
            f"nothing to resume: {last} does not exist; pass the --name of an interrupted run under "
            f"{project} or start a new training without --resume"
        )
    return run_dir, last


def _train_kwargs(config: TrainConfig, project: Path) -> dict[str, Any]:
    return {
        "data": str(config.data),
        "epochs": config.epochs,
        "imgsz": config.imgsz,
        "batch": config.batch,
        "device": config.device,
        "workers": config.workers,
        "seed": config.seed,
        "patience": config.patience,
        "project": str(project),
        "name": config.name,
        "exist_ok": False,
        "pretrained": model_kind(config.model) == "weights",
        "amp": False,  # Ultralytics' AMP check downloads yolo26n.pt; extra={"amp": "bf16"} skips it
        "nbs": NOMINAL_BATCH,
        **config.extra,
    }


def _epochs_completed(results_csv: Path) -> int:
    if not results_csv.is_file():
        return 0
    with results_csv.open(encoding="utf-8") as handle:
        epochs = [row.get("epoch", "").strip() for row in csv.DictReader(handle, skipinitialspace=True)]
    return max((int(float(e)) for e in epochs if e), default=0)


def _final_metrics(yolo: Any) -> dict[str, float]:
    trainer = yolo.trainer
    raw: Any = trainer.metrics if isinstance(getattr(trainer, "metrics", None), dict) else None
    if not raw:  # DDP: the parent never validated; Ultralytics restored them from best.pt
        raw = getattr(yolo.metrics, "results_dict", yolo.metrics) or {}
    metrics = {
        k: float(v) for k, v in dict(raw).items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    metrics.pop("fitness", None)
    return with_aliases(metrics)


def _map_training_error(error: Exception) -> Exception:
    text = str(error)
    if isinstance(error, RuntimeError) and text.startswith("Dataset "):
        return DatasetError(f"Ultralytics cannot use the dataset: {text}")
    if isinstance(error, AssertionError) and "nothing to resume" in text:
        return NexusError(f"nothing to resume: {text.splitlines()[0]}")
    return error


def train_model(
    config: TrainConfig,
    settings: NexusSettings | None = None,
    progress: bool = True,
    *,
    callbacks: Mapping[str, Callable[[Any], None]] | None = None,
    parent_run_id: str | None = None,
    run_tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train an Ultralytics YOLO detect/segment model offline and track it in one MLflow run.

    Runs under ``config.project`` (default ``<home>/runs``) / ``config.name`` (a new run gets a free
    name such as ``train-2``; ``resume=True`` continues ``<project>/<name>/weights/last.pt`` and its
    MLflow run). Several GPUs (``device="0,1"``) train with DDP; the CPU trains in one process.

    ``callbacks`` maps Ultralytics events (e.g. ``on_fit_epoch_end``) to extra callbacks; they run
    before the MLflow logging of the same event, so one that sets ``trainer.stop`` ends the training
    after that epoch as an early stop would. ``parent_run_id`` nests the new MLflow run under that
    run; ``run_tags`` are added to it.

    Example:
        >>> config = TrainConfig(data=Path("data/shapes"), epochs=2)  # doctest: +SKIP
        >>> result = train_model(config, progress=False)  # doctest: +SKIP
        >>> result.metrics["mAP50"] >= 0.0
        True
    """
    settings = settings or NexusSettings.from_env()
    project = config.project or settings.home / "runs"
    gpus = check_devices(config.device)
    spec = load_dataset_spec(config.data)  # the dataset may have changed since the config was made
    resume_run_id = None
    if config.resume:
        run_dir, last = _resume_checkpoint(config, project)
        resume_run_id = read_run_id(run_dir)
    configure_ultralytics(settings)
    _check_extra(config.extra)
    if config.resume:
        yolo = _load_yolo(str(last), weights=True)
        ckpt = yolo.ckpt or {}
        if ckpt.get("epoch", -1) < 0 or ckpt.get("optimizer") is None:
            raise NexusError(
                f"nothing to resume: the training in {run_dir} already finished; start a new one"
            )
        kwargs: dict[str, Any] = {"resume": True, "data": str(config.data), "save_dir": str(run_dir)}
        kwargs.update({key: getattr(config, key) for key in _RESUME_OVERRIDES})
    else:
        yolo = _load_yolo(config.model, weights=model_kind(config.model) == "weights")
        kwargs = _train_kwargs(config, project)
    task = _resolve_task(config, yolo.task, spec, config.model)
    digest, images = dataset_fingerprint(spec)

    tracker = MlflowTracker.start(
        settings,
        run_name=config.name,
        resume_run_id=resume_run_id,
        parent_run_id=parent_run_id,
        tags=run_tags,
    )
    tracker.log_params(
        {
            **config.params(),
            "task": task,
            "project": str(project),
            "dataset_yaml": str(spec.yaml_path),
            "dataset_sha256": digest,
            "dataset_images": images,
            "names": json.dumps(spec.names),
            "torch_threads": "" if gpus else cpu_count(),
        }
    )
    for event, callback in (callbacks or {}).items():
        yolo.add_callback(event, callback)
    for event, callback in tracker.callbacks().items():
        yolo.add_callback(event, callback)
    try:
        with ultralytics_verbosity(progress):
            yolo.train(**kwargs)
        run_dir = Path(yolo.trainer.save_dir)
        tracker.write_run_id(run_dir)
        tracker.backfill_epochs(run_dir / "results.csv")  # epochs a DDP worker could not log, if any
        metrics = _final_metrics(yolo)
        epochs = _epochs_completed(run_dir / "results.csv")
        tracker.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step=epochs)
        tracker.log_artifacts(run_dir)
    except BaseException as error:
        tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        if isinstance(error, Exception):
            mapped = _map_training_error(error)
            if mapped is not error:
                raise mapped from error
        raise
    tracker.finish("FINISHED")
    best, last_pt = run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt"
    return TrainResult(
        run_dir=run_dir,
        best_weights=best if best.is_file() else last_pt,
        last_weights=last_pt,
        metrics=metrics,
        mlflow_run_id=tracker.run_id,
        names={int(k): str(v) for k, v in (yolo.names or spec.names).items()},
        task=task,
        epochs_completed=epochs,
    )
