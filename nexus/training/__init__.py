"""Training: Ultralytics YOLO detect/segment models, offline, tracked in MLflow, resumable, DDP on GPUs.

Example:
    >>> from nexus.training import TrainConfig, train_model
    >>> result = train_model(TrainConfig(data=Path("data/shapes"), epochs=2))  # doctest: +SKIP
    >>> result.best_weights
    PosixPath('.nexus/runs/train/weights/best.pt')
"""

from nexus.training.config import TrainConfig, TrainResult
from nexus.training.trainer import train_model
from nexus.training.ultralytics_env import prefer_passive_omp_wait

prefer_passive_omp_wait()  # before torch is imported, where possible (see its docstring)

__all__ = ["TrainConfig", "TrainResult", "train_model"]
