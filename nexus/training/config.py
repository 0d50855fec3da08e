"""What a training run takes (``TrainConfig``) and what it returns (``TrainResult``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nexus.errors import ModelLoadError, NexusError
from nexus.inference.metadata import MAX_IMGSZ
from nexus.training.dataset_spec import TASKS, load_dataset_spec

# TrainConfig fields and the Ultralytics arguments Nexus sets itself: not allowed in ``extra``.
RESERVED_EXTRA_KEYS = frozenset(
    {
        "data",
        "model",
        "task",
        "epochs",
        "imgsz",
        "batch",
        "device",
        "workers",
        "seed",
        "patience",
        "name",
        "project",
        "resume",
        "mode",
        "save_dir",
        "exist_ok",
        "verbose",
    }
)
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_device(device: str) -> tuple[str, list[int]]:
    """Normalize a device string to ``"cpu"`` or a CUDA index list such as ``"0,1"``.

    Accepts ``cpu``, ``0``, ``0,1``, ``cuda`` (= ``0``) and ``cuda:0,1``; returns the canonical string
    and the CUDA indices (empty for CPU).

    Example:
        >>> parse_device("cuda:0, 1")
        ('0,1', [0, 1])
    """
    text = str(device).strip().lower().replace(" ", "")
    if text == "cpu":
        return "cpu", []
    if text.startswith("cuda"):
        text = text[4:].lstrip(":") or "0"
    parts = text.split(",")
    if parts and all(part == "cpu" for part in parts):
        raise NexusError(
            f"device={device!r}: several CPU devices are not supported (Ultralytics runs DDP only across "
            "CUDA GPUs); pass --device cpu, which trains in one process on all cores"
        )
    if not parts or not all(part.isdigit() for part in parts):
        raise NexusError(
            f"device={device!r} is not a device; pass 'cpu', one CUDA index such as '0', "
            "or a comma list such as '0,1' for multi-GPU DDP"
        )
    indices = [int(part) for part in parts]
    if len(set(indices)) != len(indices):
        raise NexusError(f"device={device!r} names a GPU twice; list each CUDA index once, e.g. '0,1'")
    return ",".join(str(i) for i in indices), indices


def model_kind(model: str) -> str:
    """Return ``"weights"`` for a ``.pt`` file or ``"yaml"`` for an architecture YAML.

    Example:
        >>> model_kind("yolov8n-seg.yaml")
        'yaml'
    """
    suffix = Path(model).suffix.lower()
    if suffix == ".pt":
        return "weights"
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    raise ModelLoadError(
        f"model {model!r} is neither an architecture YAML (e.g. yolov8n.yaml, yolov8n-seg.yaml, "
        "yolo11n.yaml) nor a .pt weights file on disk; Nexus never downloads weights, so name one of those"
    )


@dataclass
class TrainConfig:
    """One Ultralytics YOLO training: dataset, architecture or weights, schedule and device.

    ``data`` may be a dataset folder or its yaml and is resolved to the yaml. ``model`` is an
    architecture YAML known to Ultralytics (trained from scratch), a path to your own architecture
    YAML, or a path to a ``.pt`` file on disk (fine-tuned); a ``.pt`` that does not exist is rejected
    because Ultralytics would try to download it. ``device`` is ``cpu``, ``0`` or ``0,1`` (DDP).
    ``extra`` carries any other Ultralytics train argument (e.g. ``{"lr0": 0.01, "plots": False}``);
    gradients accumulate to 16 images per optimizer step unless it sets ``nbs`` (Ultralytics' 64).
    Mixed precision is off (Ultralytics' AMP check downloads weights); on GPUs pass
    ``extra={"amp": "bf16"}``. ``resume=True`` continues ``<project>/<name>/weights/last.pt``: every
    setting but ``device`` and ``workers`` then comes from that checkpoint.

    Example:
        >>> config = TrainConfig(data=Path("data/shapes"), model="yolov8n.yaml", epochs=2)  # doctest: +SKIP
        >>> config.data.name
        'dataset.yaml'
    """

    data: Path
    model: str = "yolov8n.yaml"
    task: str | None = None
    epochs: int = 30
    imgsz: int = 160
    batch: int = 16
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    patience: int = 100
    name: str = "train"
    project: Path | None = None
    resume: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("epochs", "imgsz", "batch", "workers", "seed", "patience"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise NexusError(f"{key}={value!r} must be an integer")
        if self.epochs < 1:
            raise NexusError(f"epochs={self.epochs} must be at least 1")
        if self.imgsz > MAX_IMGSZ:
            raise NexusError(f"imgsz={self.imgsz} must be at most {MAX_IMGSZ}, e.g. 160 or 640")
        if self.imgsz < 32 or self.imgsz % 32:
            raise NexusError(
                f"imgsz={self.imgsz} must be a multiple of 32 (the model stride), e.g. 160 or 640"
            )
        if self.batch < 1:
            raise NexusError(f"batch={self.batch} must be at least 1")
        if self.workers < 0 or self.seed < 0 or self.patience < 0:
            raise NexusError("workers, seed and patience must be >= 0")
        if not _NAME_PATTERN.match(self.name or ""):
            raise NexusError(
                f"name={self.name!r} must be one folder name of letters, digits, '.', '_' or '-', "
                "e.g. 'train'"
            )
        if self.task is not None and self.task not in TASKS:
            raise NexusError(
                f"task={self.task!r} is not supported; pass one of {', '.join(TASKS)} or leave it out"
            )
        self.device, indices = parse_device(self.device)
        if len(indices) > 1 and self.batch % len(indices):
            raise NexusError(
                f"batch={self.batch} must be a multiple of the {len(indices)} GPUs in device={self.device!r}"
            )
        if not isinstance(self.extra, dict):
            raise NexusError("extra must be a mapping of Ultralytics train arguments, e.g. {'lr0': 0.01}")
        clashing = sorted(RESERVED_EXTRA_KEYS & set(self.extra))
        if clashing:
            raise NexusError(
                f"extra sets {', '.join(clashing)}, which TrainConfig controls; use its fields instead"
            )
        from nexus.tuning.space import check_fixed  # lazily: nexus.tuning imports this module

        check_fixed(self.extra)  # unknown names and out-of-range values, before the MLflow run starts
        if str(self.extra.get("amp", False)).lower() in {"true", "fp16"} and indices:
            raise NexusError(
                "amp=True/'fp16' runs Ultralytics' AMP check, which downloads yolo26n.pt; pass "
                "extra={'amp': 'bf16'} for mixed precision without the check, or leave amp off"
            )
        self.model = str(self.model).strip()
        kind = model_kind(self.model)
        model_path = Path(self.model).expanduser()
        if kind == "weights" or model_path.exists() or len(model_path.parts) > 1:
            if not model_path.is_file():
                raise ModelLoadError(
                    "file not found; pass an existing .pt weights file or an architecture YAML such as "
                    "yolov8n.yaml (Nexus never downloads weights)",
                    path=self.model,
                )
            self.model = str(model_path.resolve())
        if self.task is None and kind == "yaml" and "-seg" in Path(self.model).stem:
            self.task = "segment"
        self.data = load_dataset_spec(self.data).yaml_path
        if self.project is not None:
            self.project = Path(self.project).expanduser().resolve()

    def params(self) -> dict[str, str]:
        """Flatten the fields to strings for experiment tracking (``extra.*`` keys for ``extra``).

        Example:
            >>> TrainConfig(data=Path("data/shapes")).params()["epochs"]  # doctest: +SKIP
            '30'
        """
        values = asdict(self)
        extra = values.pop("extra")
        flat = {key: "" if value is None else str(value) for key, value in values.items()}
        flat.update({f"extra.{key}": str(value) for key, value in sorted(extra.items())})
        return flat


@dataclass
class TrainResult:
    """Where a finished training left its outputs and how good the best weights are.

    ``metrics`` holds the final validation of ``best.pt`` under Ultralytics' names
    (``metrics/mAP50(B)``, ``metrics/mAP50-95(B)``, ``metrics/precision(B)``, ...) plus the plain
    aliases ``mAP50``, ``mAP50-95``, ``precision`` and ``recall`` (box metrics).

    Example:
        >>> result = train_model(TrainConfig(data=Path("data/shapes"), epochs=2))  # doctest: +SKIP
        >>> result.best_weights.name, round(result.metrics["mAP50"], 3)
        ('best.pt', 0.42)
    """

    run_dir: Path
    best_weights: Path
    last_weights: Path
    metrics: dict[str, float]
    mlflow_run_id: str | None
    names: dict[int, str]
    task: str
    epochs_completed: int

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise NexusError(f"task={self.task!r} is not one of {', '.join(TASKS)}")
        if self.epochs_completed < 0:
            raise NexusError(f"epochs_completed={self.epochs_completed} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (paths as strings, class ids as strings).

        Example:
            >>> result.to_dict()["best_weights"]  # doctest: +SKIP
            '/home/.nexus/runs/train/weights/best.pt'
        """
        return {
            "run_dir": str(self.run_dir),
            "best_weights": str(self.best_weights),
            "last_weights": str(self.last_weights),
            "metrics": dict(self.metrics),
            "mlflow_run_id": self.mlflow_run_id,
            "names": {str(k): v for k, v in self.names.items()},
            "task": self.task,
            "epochs_completed": self.epochs_completed,
        }
