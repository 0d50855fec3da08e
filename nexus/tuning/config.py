"""What a tuning study takes (``TuneConfig``) and what it returns (``TuneResult``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.errors import NexusError
from nexus.training.config import RESERVED_EXTRA_KEYS, model_kind, parse_device
from nexus.training.dataset_spec import load_dataset_spec
from nexus.tuning.space import (
    DEFAULT_SEARCH_SPACE,
    ParamSpec,
    TuneConfigError,
    check_fixed,
    check_search_space,
    ultralytics_defaults,
)

# Metrics a study can maximize: the plain names of ``TrainResult.metrics`` (box and mask).
METRICS = ("mAP50-95", "mAP50", "precision", "recall", "mask_mAP50-95", "mask_mAP50")
PRUNERS = ("median", "none")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _pruner_type() -> type:
    from optuna.pruners import BasePruner

    return BasePruner


@dataclass
class TuneConfig:
    """One Optuna study over Ultralytics YOLO hyperparameters, each trial a short training.

    ``trials`` new trials are run (0: no tuning, ``tune`` returns Ultralytics' defaults at once);
    each trains ``architecture`` on ``data`` for ``epochs`` epochs with values drawn from
    ``search_space`` (``DEFAULT_SEARCH_SPACE`` by default) and scores it by ``metric`` of its best
    weights, which the study maximizes. ``extra`` holds fixed Ultralytics train arguments for every
    trial (``plots`` off by default). ``pruner`` is ``"median"`` (Optuna's median rule: stop a
    trial whose metric at an epoch is below the median of earlier trials at that epoch, once
    ``pruner_startup_trials`` trials finished and after ``pruner_warmup_epochs`` epochs of the
    trial), ``"none"``, or any ``optuna.pruners.BasePruner``; it sees the metric of every epoch as
    step 1, 2, ... ``storage`` keeps the study so a later ``tune`` with the same ``study_name``
    continues it: ``None`` for ``<NEXUS_HOME>/tuning/optuna.journal``, a file path (an Optuna
    journal file; ``.db``/``.sqlite`` files are SQLite) or a database URL such as
    ``sqlite:///studies.db``.

    Example:
        >>> config = TuneConfig(data=Path("data/shapes"), trials=20, epochs=5)  # doctest: +SKIP
        >>> config.search_space["lr0"]
        FloatRange(low=0.0001, high=0.1, log=True)
    """

    data: Path
    architecture: str = "yolov8n.yaml"
    trials: int = 20
    epochs: int = 10
    imgsz: int = 160
    batch: int = 16
    device: str = "cpu"
    seed: int = 0
    search_space: dict[str, ParamSpec] = field(default_factory=lambda: dict(DEFAULT_SEARCH_SPACE))
    metric: str = "mAP50-95"
    pruner: Any = "median"
    pruner_warmup_epochs: int = 1
    pruner_startup_trials: int = 2
    study_name: str = "tune"
    storage: str | Path | None = None
    extra: dict[str, Any] = field(default_factory=lambda: {"plots": False})

    def __post_init__(self) -> None:
        for key in (
            "trials",
            "epochs",
            "imgsz",
            "batch",
            "seed",
            "pruner_warmup_epochs",
            "pruner_startup_trials",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TuneConfigError(f"{key}={value!r} must be an integer")
        if self.trials < 0:
            raise TuneConfigError(
                f"trials={self.trials} must be >= 0 (0 skips tuning and returns the defaults)"
            )
        if self.epochs < 1:
            raise TuneConfigError(f"epochs={self.epochs} must be at least 1 (epochs of each trial)")
        if self.imgsz < 32 or self.imgsz % 32:
            raise TuneConfigError(f"imgsz={self.imgsz} must be a multiple of 32 (the model stride), e.g. 160")
        if self.batch < 1:
            raise TuneConfigError(f"batch={self.batch} must be at least 1")
        for key in ("seed", "pruner_warmup_epochs", "pruner_startup_trials"):
            if getattr(self, key) < 0:
                raise TuneConfigError(f"{key}={getattr(self, key)} must be >= 0")
        try:
            self.device, gpus = parse_device(self.device)
        except NexusError as error:
            raise TuneConfigError(str(error)) from error
        if len(gpus) > 1:
            raise TuneConfigError(
                f"device={self.device!r}: a trial trains on one device (its pruning callback cannot run in "
                "DDP workers); pass one GPU such as '0', or run one tuning per GPU with the same study"
            )
        if self.metric not in METRICS:
            raise TuneConfigError(f"metric={self.metric!r} is not known; pass one of {', '.join(METRICS)}")
        self.architecture = str(self.architecture).strip()
        try:
            kind = model_kind(self.architecture)
        except NexusError as error:
            raise TuneConfigError(f"architecture: {error}") from error
        if kind == "weights" and not Path(self.architecture).expanduser().is_file():
            raise TuneConfigError(
                f"architecture={self.architecture!r}: no such .pt file; pass weights on disk or an "
                "architecture YAML such as yolov8n.yaml (Nexus never downloads weights)"
            )
        if self.metric.startswith("mask_") and kind == "yaml" and "-seg" not in Path(self.architecture).stem:
            raise TuneConfigError(
                f"metric={self.metric!r} needs a segment model but architecture={self.architecture!r} "
                "detects; pass a -seg architecture such as yolov8n-seg.yaml or a box metric such as mAP50-95"
            )
        self.search_space = check_search_space(self.search_space)
        if not isinstance(self.extra, dict):
            raise TuneConfigError(
                "extra must be a mapping of fixed Ultralytics train arguments, e.g. {'plots': False}"
            )
        clashing = sorted((RESERVED_EXTRA_KEYS | {"val"}) & set(self.extra))
        if clashing:
            raise TuneConfigError(
                f"extra sets {', '.join(clashing)}, which TuneConfig controls (every trial validates each "
                "epoch for pruning); use its fields instead"
            )
        check_fixed(self.extra)
        both = sorted(set(self.extra) & set(self.search_space))
        if both:
            raise TuneConfigError(
                f"extra fixes {', '.join(both)}, which search_space also tunes; remove it from one of them"
            )
        if isinstance(self.pruner, str):
            if self.pruner not in PRUNERS:
                raise TuneConfigError(
                    f"pruner={self.pruner!r} is not known; pass 'median', 'none' or an "
                    "optuna.pruners.BasePruner"
                )
        elif not isinstance(self.pruner, _pruner_type()):
            raise TuneConfigError(
                f"pruner={self.pruner!r} must be 'median', 'none' or an optuna.pruners.BasePruner instance"
            )
        if not isinstance(self.study_name, str) or not _NAME_PATTERN.match(self.study_name):
            raise TuneConfigError(
                f"study_name={self.study_name!r} must be one folder name of letters, digits, '.', '_' "
                "or '-', e.g. 'yolov8n-shapes'"
            )
        if self.storage is not None:
            if not str(self.storage).strip():
                raise TuneConfigError("storage='' is empty; pass a journal file path, a database URL or None")
            if "://" not in str(self.storage):
                self.storage = Path(self.storage).expanduser().resolve()
                if self.storage.is_dir():
                    raise TuneConfigError(
                        f"storage={str(self.storage)!r} is a folder; pass a file such as "
                        f"{self.storage / 'optuna.journal'}"
                    )
        try:
            self.data = load_dataset_spec(self.data).yaml_path
        except NexusError as error:
            raise TuneConfigError(f"data: {error}") from error

    def defaults(self) -> dict[str, Any]:
        """Ultralytics' default value of every searched argument (what training uses without tuning).

        Example:
            >>> TuneConfig(data=Path("data/shapes")).defaults()["lr0"]  # doctest: +SKIP
            0.01
        """
        known = ultralytics_defaults()
        return {name: known[name] for name in self.search_space if name in known}

    def params(self) -> dict[str, str]:
        """The settings as strings, for the study's parent MLflow run.

        Example:
            >>> TuneConfig(data=Path("data/shapes")).params()["metric"]  # doctest: +SKIP
            'mAP50-95'
        """
        pruner = self.pruner if isinstance(self.pruner, str) else type(self.pruner).__name__
        return {
            "data": str(self.data),
            "architecture": self.architecture,
            "trials": str(self.trials),
            "epochs": str(self.epochs),
            "imgsz": str(self.imgsz),
            "batch": str(self.batch),
            "device": self.device,
            "seed": str(self.seed),
            "metric": self.metric,
            "pruner": pruner,
            "pruner_warmup_epochs": str(self.pruner_warmup_epochs),
            "pruner_startup_trials": str(self.pruner_startup_trials),
            "study_name": self.study_name,
            "storage": "" if self.storage is None else str(self.storage),
            "search_space": json.dumps({k: v.to_dict() for k, v in self.search_space.items()}),
            "extra": json.dumps(self.extra, default=str, sort_keys=True),
        }


@dataclass
class TuneResult:
    """The outcome of ``tune``: the best hyperparameters over the whole study and how it went.

    ``best_params`` are the searched arguments of the best complete trial (Ultralytics' defaults
    when ``trials`` was 0 or no trial completed, with ``best_value`` and ``best_trial`` ``None``).
    The counts cover the whole study, earlier ``tune`` calls on the same storage included;
    ``trials_run`` is this call's. ``mlflow_parent_run_id`` is this call's parent run (``None``
    when nothing ran); each trial is a nested child run.

    Example:
        >>> result = tune(TuneConfig(data=Path("data/shapes"), trials=10))  # doctest: +SKIP
        >>> sorted(result.best_params)[:2]
        ['fliplr', 'hsv_h']
    """

    best_params: dict[str, Any]
    best_value: float | None
    best_trial: int | None
    metric: str
    n_complete: int
    n_pruned: int
    n_failed: int
    trials_run: int
    study_name: str
    storage: str | None
    mlflow_parent_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view.

        Example:
            >>> json.dumps(result.to_dict())  # doctest: +SKIP
        """
        return {
            "best_params": dict(self.best_params),
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "metric": self.metric,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
            "trials_run": self.trials_run,
            "study_name": self.study_name,
            "storage": self.storage,
            "mlflow_parent_run_id": self.mlflow_parent_run_id,
        }
