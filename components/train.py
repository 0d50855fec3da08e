"""``train``: Ultralytics YOLO training on a Dataset artifact into a Model artifact (MLflow run)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE)
def train(
    dataset: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    architecture: str = "yolov8n.yaml",
    epochs: int = 30,
    imgsz: int = 160,
    batch: int = 16,
    device: str = "cpu",
    seed: int = 0,
) -> str:
    """Train and return the MLflow run id; ``model`` holds ``best.pt``."""
    import shutil
    from pathlib import Path

    from nexus.training import TrainConfig, train_model

    result = train_model(
        TrainConfig(
            data=Path(dataset.path),
            model=architecture,
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            device=device,
            seed=seed,
            name="pipeline",
        ),
        progress=False,
    )
    Path(model.path).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.best_weights, Path(model.path) / "best.pt")
    model.metadata.update({"mlflow_run_id": result.mlflow_run_id or "", "task": result.task})
    for name in ("mAP50", "mAP50-95"):
        metrics.log_metric(name, float(result.metrics.get(name, 0.0)))
    return result.mlflow_run_id or ""
