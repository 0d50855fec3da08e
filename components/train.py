"""``train``: Ultralytics YOLO training on a Dataset artifact into a Model artifact (MLflow run)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
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
    hyperparameters: str = "{}",
    nominal_batch: int = 16,
) -> str:
    """Train and return the MLflow run id; ``model`` holds ``best.pt``.

    ``hyperparameters`` is a JSON object of extra Ultralytics train arguments (e.g. the output of
    ``tune``: ``{"lr0": 0.004, "momentum": 0.9}``), merged into the training configuration.
    ``nominal_batch`` is the images per optimizer step (Ultralytics' ``nbs``, 64 by default, which
    accumulates 4 batches of 16): on a few hundred images, 64 leaves too few steps to converge in 30
    epochs (the sample data reached mAP50 0.81 where 16 reaches 0.98). An ``nbs`` in
    ``hyperparameters`` wins.
    """
    import json
    import shutil
    from pathlib import Path

    from nexus.errors import NexusError
    from nexus.pipelines import save_metrics
    from nexus.training import TrainConfig, train_model

    try:
        extra = json.loads(hyperparameters or "{}")
    except json.JSONDecodeError as error:
        raise NexusError(f"hyperparameters is not JSON ({error.msg}); pass an object such as {{}}") from error
    if not isinstance(extra, dict):
        raise NexusError(f'hyperparameters={hyperparameters!r} must be a JSON object such as {{"lr0": 0.01}}')

    extra = {"nbs": nominal_batch, **extra}
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
            extra=extra,
        ),
        progress=False,
    )
    Path(model.path).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.best_weights, Path(model.path) / "best.pt")
    model.metadata.update({"mlflow_run_id": result.mlflow_run_id or "", "task": result.task})
    for name in ("mAP50", "mAP50-95"):
        metrics.log_metric(name, float(result.metrics.get(name, 0.0)))
    save_metrics(metrics)
    return result.mlflow_run_id or ""
